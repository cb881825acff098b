import fs from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import type { Config } from './config';

/** What both Temporal connection kinds (client `Connection`, worker `NativeConnection`) accept. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
}

/**
 * The one place Temporal connection settings come from, so the API, the worker and scripts reach a
 * self-hosted cluster with mTLS or Temporal Cloud (API key or mTLS) alike. TLS is on when asked for
 * (TEMPORAL_TLS), when a client certificate or CA is given, or with an API key (Temporal Cloud requires it).
 */
export function temporalConnectionOptions(config: Config): TemporalConnectionOptions {
  const read = (file: string | undefined) => (file ? fs.readFileSync(file) : undefined);
  const cert = read(config.TEMPORAL_TLS_CERT_PATH);
  const key = read(config.TEMPORAL_TLS_KEY_PATH);
  if (Boolean(cert) !== Boolean(key))
    throw new Error('set both TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH, or neither');
  const ca = read(config.TEMPORAL_TLS_CA_PATH);
  const wantTls =
    config.TEMPORAL_TLS ?? Boolean(cert || ca || config.TEMPORAL_API_KEY || config.TEMPORAL_TLS_SERVER_NAME);
  const tls: TLSConfig | boolean | undefined = !wantTls
    ? undefined
    : cert || ca || config.TEMPORAL_TLS_SERVER_NAME
      ? {
          ...(config.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: config.TEMPORAL_TLS_SERVER_NAME } : {}),
          ...(ca ? { serverRootCACertificate: ca } : {}),
          ...(cert && key ? { clientCertPair: { crt: cert, key } } : {}),
        }
      : true;
  return {
    address: config.TEMPORAL_ADDRESS,
    ...(tls !== undefined ? { tls } : {}),
    ...(config.TEMPORAL_API_KEY ? { apiKey: config.TEMPORAL_API_KEY } : {}),
  };
}
