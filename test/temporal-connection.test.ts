import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Connection } from '@temporalio/client';
import { loadConfig } from '../lib/config';
import { temporalConnectionOptions } from '../lib/temporal-connection';

const options = (env: Record<string, string>) =>
  temporalConnectionOptions(loadConfig({ TEMPORAL_ADDRESS: 'temporal.example:7233', ...env }));

describe('Temporal connection settings', () => {
  it('plain gRPC by default, and a real connection to the test server with it', async () => {
    assert.deepEqual(options({}), { address: 'temporal.example:7233' });
    const connection = await Connection.connect(temporalConnectionOptions(loadConfig(process.env)));
    try {
      assert.ok((await connection.workflowService.getSystemInfo({})).serverVersion);
    } finally {
      await connection.close();
    }
  });

  it('an API key turns TLS on (Temporal Cloud)', () => {
    assert.deepEqual(options({ TEMPORAL_API_KEY: 'key-1' }), {
      address: 'temporal.example:7233',
      tls: true,
      apiKey: 'key-1',
    });
    assert.deepEqual(options({ TEMPORAL_API_KEY: 'key-1', TEMPORAL_TLS: 'false' }), {
      address: 'temporal.example:7233',
      apiKey: 'key-1',
    });
  });

  it('mTLS files are read, and a certificate without its key is refused', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-'));
    const file = (name: string, text: string) => {
      fs.writeFileSync(path.join(dir, name), text);
      return path.join(dir, name);
    };
    const cert = file('client.pem', 'CERT');
    const key = file('client.key', 'KEY');
    const ca = file('ca.pem', 'CA');
    const tls = options({
      TEMPORAL_TLS_CERT_PATH: cert,
      TEMPORAL_TLS_KEY_PATH: key,
      TEMPORAL_TLS_CA_PATH: ca,
      TEMPORAL_TLS_SERVER_NAME: 'frontend',
    }).tls as any;
    assert.equal(tls.serverNameOverride, 'frontend');
    assert.equal(Buffer.from(tls.serverRootCACertificate).toString(), 'CA');
    assert.equal(Buffer.from(tls.clientCertPair.crt).toString(), 'CERT');
    assert.equal(Buffer.from(tls.clientCertPair.key).toString(), 'KEY');
    assert.throws(
      () => options({ TEMPORAL_TLS_CERT_PATH: cert }),
      /set both TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH/,
    );
    assert.throws(() => loadConfig({ TEMPORAL_TLS: 'yes' }), /TEMPORAL_TLS/);
    assert.throws(
      () => loadConfig({ TEMPORAL_SDK_METRICS_ADDRESS: 'nine' }),
      /TEMPORAL_SDK_METRICS_ADDRESS: use host:port/,
    );
    fs.rmSync(dir, { recursive: true });
  });
});
