/**
 * `npm run chaos` (`-- --short` for the test-sized run, `--cluster` for Temporal as the self-hosted
 * cluster instead of the dev server, `--json <file>` to write the tally): runs the chaos harness on its own
 * stack, prints the tally and exits non-zero when any guarantee was broken.
 *
 * CHAOS_FAULT_RATE (default 0.15) is the share of model requests that fail; CHAOS_FAULT_KINDS picks
 * among rate_limit, server_error, timeout, malformed (default all); CHAOS_SEED repeats a fault sequence;
 * CHAOS_KILL_EVERY_SECONDS overrides how long each worker lives.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { FAULT_KINDS } from './flaky-provider';
import { runChaos, SIZES } from './harness';

const env = z
  .object({
    CHAOS_FAULT_RATE: z.coerce.number().min(0).max(1).default(0.15),
    CHAOS_FAULT_KINDS: z
      .string()
      .default(FAULT_KINDS.join(','))
      .transform((s) =>
        s
          .split(',')
          .map((k) => k.trim())
          .filter(Boolean),
      )
      .pipe(z.array(z.enum(FAULT_KINDS)).min(1)),
    CHAOS_SEED: z.coerce.number().int().default(42),
    CHAOS_KILL_EVERY_SECONDS: z.coerce.number().positive().optional(),
  })
  .parse(process.env);

const args = process.argv.slice(2);
const short = args.includes('--short');
const profile = args.includes('--cluster') ? 'cluster' : 'dev';
const jsonIndex = args.indexOf('--json');
const jsonPath = jsonIndex >= 0 ? args[jsonIndex + 1] : undefined;
const base = short ? SIZES.short : SIZES.full;
const size = { ...base, killEverySeconds: env.CHAOS_KILL_EVERY_SECONDS ?? base.killEverySeconds };
const log = (msg: string) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${msg}`);

runChaos({
  size,
  profile,
  faultRate: env.CHAOS_FAULT_RATE,
  faultKinds: env.CHAOS_FAULT_KINDS,
  seed: env.CHAOS_SEED,
  log,
}).then(
  (tally) => {
    const text = JSON.stringify(tally, null, 2);
    if (jsonPath) fs.writeFileSync(jsonPath, text);
    console.log(text);
    log(tally.ok ? 'every guarantee held' : `${tally.violations.length} violation(s)`);
    process.exit(tally.ok ? 0 : 1);
  },
  (err: unknown) => {
    log(`chaos run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(2);
  },
);
