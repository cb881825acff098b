/**
 * Headless Chromium for browser tests: Debian's package (`/usr/bin/chromium`) driven by playwright-core,
 * which downloads no browser of its own. test/run.ts calls `ensureChromium()` once before the tests; a
 * test calls `launchChromium()`, which fails with the reason when Chromium could not be installed.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Set by `ensureChromium()` when Chromium is missing and could not be installed; read by `launchChromium()`. */
const SETUP_ERROR_ENV = 'CHROMIUM_SETUP_ERROR';

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-quic',
  '--no-first-run',
  '--disable-sync',
];

function run(cmd: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } },
      (err, stdout, stderr) => {
        if (!err) return resolve();
        const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-15).join('\n');
        reject(new Error(`\`${cmd} ${args.join(' ')}\` failed: ${err.message.split('\n')[0]}\n${tail}`));
      },
    );
  });
}

/**
 * Makes sure Debian's Chromium is installed, with `apt-get update && apt-get install -y chromium` when it is
 * missing. When it cannot be (not root, apt fails) it says so and records the reason in the environment the
 * test files inherit, so the browser test fails with that message instead of being skipped.
 */
export async function ensureChromium(): Promise<void> {
  if (fs.existsSync(CHROMIUM_PATH)) return;
  let reason: string;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    reason = `${CHROMIUM_PATH} is missing and this user is not root, so it cannot be installed; run \`sudo apt-get update && sudo apt-get install -y chromium\``;
  } else {
    console.error('Installing Chromium for the browser tests (apt-get install -y chromium)…');
    const started = Date.now();
    try {
      await run('apt-get', ['update'], 10 * 60_000);
      await run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], 15 * 60_000);
    } catch (err) {
      reason = `${CHROMIUM_PATH} is missing and installing it failed: ${(err as Error).message}`;
    }
    if (fs.existsSync(CHROMIUM_PATH)) {
      console.error(`Chromium installed in ${Math.round((Date.now() - started) / 1000)} s.`);
      return;
    }
    reason ??= `apt-get install chromium succeeded but ${CHROMIUM_PATH} does not exist`;
  }
  console.error(`Browser tests will fail: ${reason}`);
  process.env[SETUP_ERROR_ENV] = reason;
}

export interface ChromiumSession {
  context: BrowserContext;
  page: Page;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

/** Starts headless Chromium with a fresh profile directory and opens one page. */
export async function launchChromium(
  opts: { viewport?: { width: number; height: number } } = {},
): Promise<ChromiumSession> {
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not available for the browser tests: ${process.env[SETUP_ERROR_ENV] ?? `${CHROMIUM_PATH} is missing; test/run.ts installs it (apt-get install -y chromium)`}`,
    );
  }
  const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
  const removeProfile = () => fs.rmSync(profileDir, { recursive: true, force: true });
  try {
    // launchPersistentContext is how Playwright takes a --user-data-dir; it owns the browser process.
    const context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: opts.viewport ?? { width: 1600, height: 1000 },
      timeout: 60_000,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    return {
      context,
      page,
      async close() {
        await context.close().catch(() => undefined);
        removeProfile();
      },
    };
  } catch (err) {
    removeProfile();
    throw err;
  }
}
