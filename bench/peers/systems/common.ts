/**
 * What every peer's tool does: one row in `peer_tool_writes`. Where the system offers an idempotency key,
 * the row is keyed by it and a second application only counts an attempt; where it offers none, every
 * application is a row of its own, so the benchmark can count writes applied twice.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';

export const TOOL_TABLE = `CREATE TABLE IF NOT EXISTS peer_tool_writes (
  id bigserial PRIMARY KEY,
  system text NOT NULL,
  task_id text NOT NULL,
  idem_key text UNIQUE,
  started_at_ms double precision NOT NULL,
  attempts int NOT NULL DEFAULT 1
)`;

export async function writeTool(
  pool: pg.Pool,
  w: { system: string; taskId: string; idemKey: string | null; startedAtMs: number },
): Promise<void> {
  await pool.query(
    `INSERT INTO peer_tool_writes (system, task_id, idem_key, started_at_ms) VALUES ($1, $2, $3, $4)
     ON CONFLICT (idem_key) DO UPDATE SET attempts = peer_tool_writes.attempts + 1`,
    [w.system, w.taskId, w.idemKey, w.startedAtMs],
  );
}

export function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

/** The task's prompt: the loopback model reads the task id from it and names it in its tool call. */
export const prompt = (taskId: string) => `Please do "peer-task ${taskId}": write it to memory, then answer.`;

export type Handler = (
  method: string,
  parts: string[],
  body: Record<string, unknown>,
) => Promise<{ status: number; body: unknown }>;

/**
 * A small JSON server on loopback (on PORT, so a restart keeps its address); prints `{"port":…}` on stdout
 * once it listens.
 */
export function serve(handle: Handler): void {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const parts = (req.url ?? '/').split('?')[0].split('/').filter(Boolean);
      void handle(req.method ?? 'GET', parts, raw ? (JSON.parse(raw) as Record<string, unknown>) : {})
        .catch((err: Error) => ({ status: 500, body: { error: err.message } }))
        .then(({ status, body }) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        });
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
}
