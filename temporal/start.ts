/**
 * Local Temporal for development: `tsx temporal/start.ts`.
 * Persists to .data/temporal.sqlite; ports from TEMPORAL_PORT (7233) and TEMPORAL_UI_PORT (8233).
 */
import { findTemporalCli, startDevServer } from './dev-server';

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${name} must be a port number (0 picks a free one), got "${raw}"`);
  }
  return port;
}

async function main(): Promise<void> {
  // Diagnostics go to stderr so stdout carries only the addresses.
  const log = (msg: string) => console.error(msg);
  const port = portFromEnv('TEMPORAL_PORT', 7233);
  const uiPort = portFromEnv('TEMPORAL_UI_PORT', 8233);

  const cliPath = await findTemporalCli({ log });
  const started = Date.now();
  // e.g. http://127.0.0.1:3300/codec, when the API runs with PAYLOAD_ENCRYPTION_KEY.
  const server = await startDevServer({
    cliPath,
    port,
    uiPort,
    codecEndpoint: process.env.TEMPORAL_CODEC_ENDPOINT || undefined,
    log,
  });

  console.log(`Temporal dev server ready in ${Date.now() - started} ms (pid ${server.pid})`);
  console.log(`  address:   ${server.address}   namespace: ${server.namespace}`);
  console.log(`  Web UI:    ${server.uiUrl}`);
  console.log(`  metrics:   http://${server.address.replace(/:\d+$/, '')}:${server.metricsPort}/metrics`);
  console.log(`  database:  ${server.dbFilename}`);
  console.log('Press Ctrl-C to stop.');

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second Ctrl-C: the user does not want to wait for a graceful stop.
      console.error(`${signal} again, exiting now`);
      process.exit(130);
    }
    stopping = true;
    console.error(`${signal} received, stopping Temporal...`);
    server.stop().then(
      () => process.exit(0),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);

  const exit = await server.exited;
  if (!stopping) {
    console.error(`Temporal dev server exited unexpectedly (code ${exit.code}, signal ${exit.signal})`);
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
