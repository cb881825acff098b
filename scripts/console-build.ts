/**
 * Builds the web console (console/) into dist/console: one bundled script and one stylesheet, no CDN,
 * so the page works with no network. `npm run build` runs it; `npm start` and the console test call
 * `buildConsole()` before they serve the page.
 */
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { CONSOLE_DIR } from '../api/routes/console';

const SOURCE = path.resolve(__dirname, '../console');

/** Bundles the console into `outDir` (dist/console by default); takes well under a second. */
export async function buildConsole(outDir = CONSOLE_DIR): Promise<void> {
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(path.join(outDir, 'assets'), { recursive: true });
  await build({
    entryPoints: { app: path.join(SOURCE, 'src/main.tsx') },
    outdir: path.join(outDir, 'assets'),
    bundle: true,
    minify: true,
    sourcemap: true,
    format: 'esm',
    target: ['chrome110', 'firefox110', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: path.join(SOURCE, 'tsconfig.json'),
    logLevel: 'warning',
  });
  fs.copyFileSync(path.join(SOURCE, 'index.html'), path.join(outDir, 'index.html'));
}

if (require.main === module) {
  buildConsole().then(
    () => console.log(`Console built in ${path.relative(process.cwd(), CONSOLE_DIR) || CONSOLE_DIR}`),
    (err: unknown) => {
      console.error(`Console build failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
