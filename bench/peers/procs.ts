/** Child processes of the peers benchmark: any Node.js binary, killed on purpose without being reported. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from '../lib';

const running = new Set<ChildProcess>();
process.on('exit', () => running.forEach((c) => c.kill('SIGKILL')));

export interface Proc {
  name: string;
  pid: number;
  output(): string;
  exited(): boolean;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** `<node> --import tsx <script>`; `node` defaults to this process's binary. */
export function startProc(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  opts: { node?: string; args?: string[]; cwd?: string } = {},
): Proc {
  const proc = spawn(
    opts.node ?? process.execPath,
    ['--import', 'tsx', path.join(ROOT, script), ...(opts.args ?? [])],
    {
      cwd: opts.cwd ?? ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  running.add(proc);
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-20_000)));
  proc.stderr!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-20_000)));
  const exited = new Promise<void>((resolve) =>
    proc.once('exit', () => {
      running.delete(proc);
      resolve();
    }),
  );
  const done = () => proc.exitCode !== null || proc.signalCode !== null;
  return {
    name,
    pid: proc.pid!,
    output: () => out,
    exited: done,
    async kill() {
      if (!done()) proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (done()) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Waits until the process prints `{"port":…}` (its first JSON line with a port) and returns the port. */
export async function portOf(p: Proc, timeoutMs = 120_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = /\{"port":(\d+)\}/.exec(p.output());
    if (m) return Number(m[1]);
    if (p.exited()) throw new Error(`${p.name} exited before listening:\n${p.output().slice(-3000)}`);
    await sleep(50);
  }
  throw new Error(`${p.name} did not listen within ${timeoutMs / 1000} s:\n${p.output().slice(-3000)}`);
}

/** Waits for a process to exit by itself (a one-shot command); throws with its output if it failed. */
export async function runToEnd(p: Proc, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!p.exited()) {
    if (Date.now() > deadline) {
      await p.kill();
      throw new Error(`${p.name} did not finish in ${timeoutMs / 1000} s`);
    }
    await sleep(100);
  }
}
