/**
 * Finds (or builds) Jaeger v2 pinned to v1.75.0 and runs it with in-memory storage: OTLP on 4317 (gRPC)
 * and 4318 (HTTP), UI and query API on 16686. Used by `npm start -- --traces` and test/traces.test.ts.
 *
 * `go install …/cmd/jaeger@v1.75.0` refuses the module (its go.mod has replace directives), so it is built
 * as a tool of a throwaway module in the cache directory, like the Temporal CLI's cached build.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

/** The module tag we pin: the v2 binary (an OpenTelemetry Collector distribution). */
export const JAEGER_VERSION = 'v1.75.0';
/** The same release as a container image (Jaeger tags each release v1.x for Go and 2.x for the image). */
export const JAEGER_IMAGE = 'jaegertracing/jaeger:2.12.0';
const JAEGER_PACKAGE = 'github.com/jaegertracing/jaeger/cmd/jaeger';

export const JAEGER_UI_PORT = 16686;
export const JAEGER_OTLP_HTTP_PORT = 4318;
export const JAEGER_OTLP_GRPC_PORT = 4317;

export function jaegerCacheDir(): string {
  return (
    process.env.JAEGER_CACHE_DIR || path.join(os.homedir(), '.cache', 'agent-orchestrator', `jaeger-${JAEGER_VERSION}`)
  );
}

async function executable(file: string): Promise<boolean> {
  try {
    await fs.access(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** JAEGER_PATH, else the cached build, else a build with Go (minutes, once). */
export async function findJaeger(announce: (msg: string) => void = () => {}): Promise<string> {
  const fromEnv = process.env.JAEGER_PATH;
  if (fromEnv) {
    if (!(await executable(fromEnv))) throw new Error(`JAEGER_PATH is set to "${fromEnv}", but it is not executable`);
    return fromEnv;
  }
  const dir = jaegerCacheDir();
  const binary = path.join(dir, 'jaeger');
  if (await executable(binary)) return binary;
  announce(`Building Jaeger ${JAEGER_VERSION} with Go into ${dir} (several minutes, once)…`);
  const build = path.join(dir, 'build');
  await fs.mkdir(build, { recursive: true });
  const run = promisify(execFile);
  const opts = { cwd: build, maxBuffer: 16 * 1024 * 1024 };
  try {
    const hasModule = await fs.stat(path.join(build, 'go.mod')).then(
      () => true,
      () => false,
    );
    if (!hasModule) await run('go', ['mod', 'init', 'jaegerbuild'], opts);
    await run('go', ['get', '-tool', `${JAEGER_PACKAGE}@${JAEGER_VERSION}`], opts);
    await run('go', ['build', '-o', binary, JAEGER_PACKAGE], opts);
  } catch (err) {
    throw new Error(
      `Cannot build Jaeger ${JAEGER_VERSION} (${(err as Error).message.split('\n')[0]}). ` +
        'Install Go, or set JAEGER_PATH to a jaeger v2 binary.',
    );
  }
  return binary;
}

export interface RunningJaeger {
  process: ChildProcess;
  /** Base URL of the UI and the query API (`/api/traces`, `/api/services`). */
  uiUrl: string;
  /** What OTEL_EXPORTER_OTLP_ENDPOINT should be. */
  otlpHttpUrl: string;
  stop(): Promise<void>;
}

/** Starts Jaeger and waits (up to a minute) until its query API answers. */
export async function startJaeger(opts: { binary: string; detached?: boolean }): Promise<RunningJaeger> {
  const child = spawn(opts.binary, [], { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached ?? false });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const uiUrl = `http://127.0.0.1:${JAEGER_UI_PORT}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000).then(() => child.kill('SIGKILL'))]);
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`jaeger exited (${child.exitCode}):\n${output}`);
    try {
      if ((await fetch(`${uiUrl}/api/services`)).ok) {
        return { process: child, uiUrl, otlpHttpUrl: `http://127.0.0.1:${JAEGER_OTLP_HTTP_PORT}`, stop };
      }
    } catch {
      // Not listening yet.
    }
    await sleep(200);
  }
  await stop();
  throw new Error(`jaeger did not answer on ${uiUrl} within 60 s:\n${output}`);
}
