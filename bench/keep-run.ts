/** How both benchmarks (bench/run.ts, bench/peers/run.ts) keep a run in their output directory. */
import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes results.json, appends `entry` to history.jsonl and renders RESULTS.md with the whole history
 * (this run last). Every run is kept, whatever it measured: a failed run is part of the record too.
 */
export function keepRun<E>(outDir: string, results: unknown, entry: E, render: (history: E[]) => string): void {
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const historyFile = path.join(outDir, 'history.jsonl');
  fs.appendFileSync(historyFile, `${JSON.stringify(entry)}\n`);
  const history = fs
    .readFileSync(historyFile, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as E);
  fs.writeFileSync(path.join(outDir, 'RESULTS.md'), render(history));
}
