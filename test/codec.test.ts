import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createDecipheriv, randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { Page } from 'playwright-core';
import {
  createPayloadCodec,
  ENCRYPTED_ENCODING,
  generateKey,
  METADATA_ENCRYPTION_KEY_ID,
  METADATA_ENCRYPTION_ORG,
  payloadCodecFor,
} from '../lib/codec';
import { loadConfig } from '../lib/config';
import { getFreePort, startDevServer, type DevServerHandle } from '../temporal/dev-server';
import { agentWorkflowId } from '../contract/definitions';
import { launchChromium, type ChromiumSession } from './helpers/browser';
import { idleAgentHistory } from './helpers/history';
import { ApiClient, startApi, startWorker, testConfig, type TestStack } from './helpers/stack';

const run = promisify(execFile);
const KEY_ID = 'codec-test-key';
/** Appears in the task's title, input and answer; must never reach Temporal in the clear. */
const SECRET = `plaintext-secret-${randomUUID()}`;

type JsonPayload = { metadata?: Record<string, string>; data?: string };
const b64 = (text: string) => Buffer.from(text).toString('base64');
const unb64 = (text: string | undefined) => Buffer.from(text ?? '', 'base64').toString('utf8');
const jsonPayload = (value: unknown): JsonPayload => ({
  metadata: { encoding: b64('json/plain') },
  data: b64(JSON.stringify(value)),
});

/** At run time the proto module's `Payload` is a protobufjs reflection Type; decoded messages are instances of its ctor. */
const PayloadMessage = (
  temporal.api.common.v1.Payload as unknown as { ctor: abstract new (...args: never[]) => Payload }
).ctor;

/** Every Payload in a history except search attributes (indexed by the server, never encoded) and headers. */
function collectPayloads(value: unknown, out: Payload[] = [], key = ''): Payload[] {
  if (value instanceof PayloadMessage) {
    out.push(value);
  } else if (
    value &&
    typeof value === 'object' &&
    !ArrayBuffer.isView(value) &&
    key !== 'searchAttributes' &&
    key !== 'header'
  ) {
    for (const [k, v] of Object.entries(value)) collectPayloads(v, out, k);
  }
  return out;
}

describe('payload encryption and the codec server', () => {
  const key = generateKey();
  let stack: TestStack;
  let worker: { stop(): Promise<void> };
  let rawConnection: Connection;
  let rawClient: Client;

  before(async () => {
    const config = testConfig({ PAYLOAD_ENCRYPTION_KEY: key, PAYLOAD_ENCRYPTION_KEY_ID: KEY_ID });
    assert.ok(payloadCodecFor(config), 'the test configuration enables encryption');
    stack = await startApi(config);
    worker = await startWorker(config);
    // No dataConverter: sees exactly what Temporal stores.
    rawConnection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
    rawClient = new Client({ connection: rawConnection, namespace: config.TEMPORAL_NAMESPACE });
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
    await rawConnection?.close();
  });

  async function rawHistory(workflowId: string): Promise<temporal.api.history.v1.IHistoryEvent[]> {
    const events: temporal.api.history.v1.IHistoryEvent[] = [];
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await rawClient.workflowService.getWorkflowExecutionHistory({
        namespace: stack.config.TEMPORAL_NAMESPACE,
        execution: { workflowId },
        nextPageToken,
      });
      events.push(...(page.history?.events ?? []));
      nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
    } while (nextPageToken);
    return events;
  }

  const decode = (payloads: JsonPayload[], headers: Record<string, string> = {}) =>
    stack.api.request(
      'POST',
      '/codec/decode',
      { payloads },
      { headers: { 'x-namespace': stack.config.TEMPORAL_NAMESPACE, ...headers } },
    );
  const encode = (payloads: JsonPayload[]) => stack.api.post('/codec/encode', { payloads });

  /** The payloads of the agent's history, which holds its goals' steps too. */
  let agentPayloads: Payload[] = [];
  let agentId: string | undefined;

  it('stores every payload of a real task encrypted, and the worker still reads them', async () => {
    const agent = await stack.api.createAgent({ name: 'Encrypted agent', objective: 'Keep secrets' });
    const task = await stack.api.createTask({
      agentId: agent.id,
      title: `handle ${SECRET}`,
      input: {
        note: SECRET,
        script: [
          { call: 'memory_write', args: { key: 'secret', op: 'set', value: SECRET } },
          { answer: `done with ${SECRET}` },
        ],
      },
    });
    agentId = agent.id;
    const done = await stack.api.waitForTask(task.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.ok(
      done.output.answer.endsWith(`done with ${SECRET}`),
      `the worker decrypted the input: ${done.output.answer}`,
    );

    // The goal ran inside the agent's workflow: read its history once the agent is idle again.
    for (const workflowId of [agentWorkflowId(agent.id)]) {
      const events = await idleAgentHistory(stack, agent.id, () => rawHistory(workflowId));
      // Patch markers (`patched()`) are written by the SDK's core, past the codec: they hold only the patch id.
      const patchMarkers = events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch');
      for (const marker of collectPayloads(patchMarkers))
        assert.match(Buffer.from(marker.data ?? []).toString(), /^\{"id":"[\w-]+","deprecated":(true|false)\}$/);
      // A local activity's marker carries core's bookkeeping (sequence, attempt, activity type, times) past the
      // codec, like a patch marker; its result is ours and is encrypted like any other payload.
      const localActivityData = events.flatMap((e) =>
        e.markerRecordedEventAttributes?.markerName === 'core_local_activity'
          ? collectPayloads(e.markerRecordedEventAttributes.details?.data)
          : [],
      );
      assert.ok(localActivityData.length > 0, `${workflowId}: its records ran as local activities`);
      for (const data of localActivityData) {
        const fields = Object.keys(JSON.parse(Buffer.from(data.data ?? []).toString()) as object).sort();
        assert.deepEqual(fields, [
          'activity_id',
          'activity_type',
          'attempt',
          'backoff',
          'complete_time',
          'original_schedule_time',
          'seq',
        ]);
      }
      const payloads = collectPayloads(events.filter((e) => !patchMarkers.includes(e))).filter(
        (p) => !localActivityData.includes(p),
      );
      assert.ok(payloads.length >= 3, `${workflowId}: found ${payloads.length} payloads`);
      for (const payload of payloads) {
        assert.equal(
          Buffer.from(payload.metadata?.encoding ?? []).toString(),
          ENCRYPTED_ENCODING,
          `${workflowId}: a payload is stored unencrypted: ${Buffer.from(payload.data ?? [])
            .toString()
            .slice(0, 200)}`,
        );
        assert.equal(Buffer.from(payload.metadata?.[METADATA_ENCRYPTION_KEY_ID] ?? []).toString(), KEY_ID);
        // Beside the encoding and key id, only the organisation a payload is bound to (also a search attribute).
        const keys = Object.keys(payload.metadata ?? {}).sort();
        assert.ok(
          keys.every((k) => ['encoding', METADATA_ENCRYPTION_KEY_ID, METADATA_ENCRYPTION_ORG].includes(k)),
          `no plaintext metadata left beside: ${keys.join(', ')}`,
        );
        if (payload.metadata?.[METADATA_ENCRYPTION_ORG])
          assert.equal(Buffer.from(payload.metadata[METADATA_ENCRYPTION_ORG]).toString(), stack.config.DEFAULT_ORG_ID);
      }
      const raw = Buffer.from(temporal.api.history.v1.History.encode({ events }).finish());
      assert.ok(raw.length > 0);
      assert.equal(raw.includes(SECRET), false, `${workflowId}: the plaintext appears in the stored history`);
      assert.equal(
        raw.includes(b64(SECRET).slice(0, 24)),
        false,
        `${workflowId}: the plaintext appears base64-encoded in the stored history`,
      );
      agentPayloads = payloads;
    }
  });

  it('decodes those payloads through POST /codec/decode back to the plaintext JSON', async () => {
    assert.ok(agentPayloads.length > 0, 'needs the agent history of the previous test');
    const sent = agentPayloads.map((p) => ({
      metadata: Object.fromEntries(
        Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      ),
      data: Buffer.from(p.data ?? []).toString('base64'),
    }));
    const res = await decode(sent);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(res.body.payloads.length, sent.length);
    for (const p of res.body.payloads as JsonPayload[])
      assert.notEqual(unb64(p.metadata?.encoding), ENCRYPTED_ENCODING);
    const texts = (res.body.payloads as JsonPayload[]).map((p) => unb64(p.data));
    // The submission (the submitGoal update's argument) with the task's input, as the JSON the SDK wrote.
    const input = texts.find((t) => t.includes(`"note":"${SECRET}"`));
    assert.ok(input, `no decoded payload holds the task input: ${texts.join('\n').slice(0, 2000)}`);
    assert.equal(JSON.parse(input).input.note, SECRET);
    assert.ok(
      texts.some((t) => t.includes(`done with ${SECRET}`)),
      'the result decodes too',
    );
    assert.ok(
      texts.some((t) => t === JSON.stringify(`"handle ${SECRET}" · model call, step 1/10`)),
      'an activity summary is encrypted and decodes',
    );
  });

  it('lets the temporal CLI show the history decrypted with --codec-endpoint', async () => {
    assert.ok(agentId, 'needs the agent of the first test');
    // A closed workflow's history, so the CLI reads it to the end instead of waiting for new events.
    await stack.api.post(`/api/v1/agents/${agentId}/archive`);
    await stack.client.workflow.getHandle(agentWorkflowId(agentId)).result();
    const cli = process.env.TEMPORAL_CLI_PATH!;
    const args = [
      'workflow',
      'show',
      '--address',
      stack.config.TEMPORAL_ADDRESS,
      '--namespace',
      stack.config.TEMPORAL_NAMESPACE,
      '--workflow-id',
      agentWorkflowId(agentId),
      '--output',
      'json',
    ];
    // The JSON output keeps proto JSON: payload data and metadata stay base64, decoded or not.
    const payloadTexts = (stdout: string) =>
      [...stdout.matchAll(/"data":\s*"([A-Za-z0-9+/=]*)"/g)].map((m) => unb64(m[1])).join('\n');
    const plain = await run(cli, args);
    assert.equal(payloadTexts(plain.stdout).includes(SECRET), false, 'without the codec the CLI sees ciphertext only');
    assert.ok(plain.stdout.includes(b64(ENCRYPTED_ENCODING)));
    const withoutKey = await run(cli, [...args, '--codec-endpoint', `${stack.api.baseUrl}/codec`]).catch(
      (err: { stdout?: string; stderr?: string }) => err,
    );
    assert.equal(
      payloadTexts(withoutKey.stdout ?? '').includes(SECRET),
      false,
      'the codec server decodes nothing for a caller without a key',
    );
    const decoded = await run(cli, [
      ...args,
      '--codec-endpoint',
      `${stack.api.baseUrl}/codec`,
      '--codec-auth',
      `Bearer ${stack.api.apiKey}`,
    ]);
    assert.ok(
      payloadTexts(decoded.stdout).includes(`"note":"${SECRET}"`),
      `the CLI shows the plaintext through the codec server:\n${decoded.stdout.slice(0, 1500)}`,
    );
    assert.equal(decoded.stdout.includes(b64(ENCRYPTED_ENCODING)), false, 'nothing is left encrypted');
  });

  it('round-trips /codec/encode then /codec/decode', async () => {
    const original = [
      jsonPayload({ hello: SECRET, n: 1 }),
      jsonPayload([1, 2, 3]),
      { metadata: { encoding: b64('binary/null') } },
    ];
    const encoded = await encode(original);
    assert.equal(encoded.status, 200, JSON.stringify(encoded.body));
    assert.equal(encoded.body.payloads.length, 3);
    for (const p of encoded.body.payloads as JsonPayload[]) {
      assert.equal(unb64(p.metadata?.encoding), ENCRYPTED_ENCODING);
      assert.equal(unb64(p.metadata?.[METADATA_ENCRYPTION_KEY_ID]), KEY_ID);
      assert.equal(unb64(p.data).includes(SECRET), false);
    }
    const decoded = await decode(encoded.body.payloads);
    assert.equal(decoded.status, 200, JSON.stringify(decoded.body));
    assert.deepEqual(decoded.body.payloads, original);
    // Encoding twice gives different ciphertexts (random IV).
    const again = await encode(original);
    assert.notEqual(again.body.payloads[0].data, encoded.body.payloads[0].data);
  });

  it('answers 400 with a JSON error for an unknown key id, altered data or a malformed body', async () => {
    const foreign = createPayloadCodec({ key: generateKey(), keyId: 'some-other-key' });
    const [encrypted] = await foreign.encode([
      { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"x"') },
    ]);
    const asJson: JsonPayload = {
      metadata: Object.fromEntries(
        Object.entries(encrypted!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      ),
      data: Buffer.from(encrypted!.data!).toString('base64'),
    };
    const unknown = await decode([asJson]);
    assert.equal(unknown.status, 400, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error.code, 'unknown_key_id');
    assert.match(unknown.body.error.message, /some-other-key/);

    const ours = (await encode([jsonPayload(SECRET)])).body.payloads[0] as JsonPayload;
    const bytes = Buffer.from(ours.data!, 'base64');
    bytes[bytes.length - 20]! ^= 0xff;
    const altered = await decode([{ ...ours, data: bytes.toString('base64') }]);
    assert.equal(altered.status, 400, JSON.stringify(altered.body));
    assert.equal(altered.body.error.code, 'decryption_failed');

    const noKeyId = await decode([{ metadata: { encoding: b64(ENCRYPTED_ENCODING) }, data: ours.data }]);
    assert.equal(noKeyId.status, 400);
    assert.equal(noKeyId.body.error.code, 'missing_key_id');

    const badShape = await stack.api.post('/codec/decode', { payload: [] });
    assert.equal(badShape.status, 400);
    assert.equal(badShape.body.error.code, 'validation_failed');
    const badJson = await stack.api.request('POST', '/codec/decode', undefined, { raw: '{"payloads": [' });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.body.error.code, 'invalid_json');
  });

  it('passes unencrypted payloads through decode unchanged', async () => {
    const plain = [
      jsonPayload({ recorded: 'before encryption', secret: SECRET }),
      { metadata: { encoding: b64('binary/null') } },
      jsonPayload('x'),
    ];
    const res = await decode(plain);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.payloads, plain);
    // Proto3 JSON of an empty list of payloads (the CLI sends it for an update without arguments).
    const empty = await stack.api.request(
      'POST',
      '/codec/decode',
      {},
      { headers: { 'x-namespace': stack.config.TEMPORAL_NAMESPACE } },
    );
    assert.equal(empty.status, 200, JSON.stringify(empty.body));
    assert.deepEqual(empty.body, { payloads: [] });

    // The same in the codec the worker and clients use: the very objects come back.
    const codec = createPayloadCodec({ key, keyId: KEY_ID });
    const payload: Payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('{"a":1}') };
    const [out] = await codec.decode([payload]);
    assert.equal(out, payload);
  });

  it('encrypts the original Payload proto as IV || ciphertext || tag with AES-256-GCM', async () => {
    const codec = createPayloadCodec({ key, keyId: KEY_ID });
    const original = temporal.api.common.v1.Payload.create({
      metadata: { encoding: Buffer.from('json/plain') },
      data: Buffer.from(JSON.stringify(SECRET)),
    });
    const [encrypted] = await codec.encode([original]);
    const data = Buffer.from(encrypted!.data!);
    const serialized = temporal.api.common.v1.Payload.encode(original).finish();
    assert.equal(data.length, 12 + serialized.length + 16);
    const decipher = createDecipheriv('aes-256-gcm', Buffer.from(key, 'base64'), data.subarray(0, 12));
    decipher.setAuthTag(data.subarray(data.length - 16));
    const plaintext = Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()]);
    assert.deepEqual(plaintext, Buffer.from(serialized));
    const [decoded] = await codec.decode([encrypted!]);
    assert.deepEqual(Buffer.from(decoded!.data!), Buffer.from(original.data));
    assert.deepEqual(Buffer.from(decoded!.metadata!.encoding!), Buffer.from('json/plain'));
  });

  it('reads histories written with a retired key listed in PAYLOAD_DECRYPTION_KEYS', async () => {
    const oldKey = generateKey();
    const [old] = await createPayloadCodec({ key: oldKey, keyId: 'old' }).encode([
      { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"old"') },
    ]);
    const rotated = payloadCodecFor({
      PAYLOAD_ENCRYPTION_KEY: generateKey(),
      PAYLOAD_ENCRYPTION_KEY_ID: 'new',
      PAYLOAD_DECRYPTION_KEYS: [`old:${oldKey}`],
    })!;
    assert.equal(Buffer.from((await rotated.decode([old!]))[0]!.data!).toString(), '"old"');
    const decryptOnly = payloadCodecFor({
      PAYLOAD_ENCRYPTION_KEY_ID: 'default',
      PAYLOAD_DECRYPTION_KEYS: [`old:${oldKey}`],
    })!;
    assert.equal(Buffer.from((await decryptOnly.decode([old!]))[0]!.data!).toString(), '"old"');
    const fresh: Payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('1') };
    assert.deepEqual(await decryptOnly.encode([fresh]), [fresh], 'decrypt-only mode writes new payloads plain');
    assert.throws(() => createPayloadCodec({ key: 'too-short', keyId: 'x' }), /base64 of 32 bytes/);
  });

  it('answers CORS preflight and requests for the Web UI origin only', async () => {
    const preflight = await fetch(`${stack.api.baseUrl}/codec/decode`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://127.0.0.1:8233',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-namespace',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://127.0.0.1:8233');
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
    const allowHeaders = (preflight.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const h of ['x-namespace', 'content-type', 'authorization']) assert.ok(allowHeaders.includes(h), allowHeaders);

    const actual = await decode([jsonPayload(1)], { origin: 'http://localhost:8233' });
    assert.equal(actual.status, 200);
    assert.equal(actual.headers.get('access-control-allow-origin'), 'http://localhost:8233');

    const stranger = await fetch(`${stack.api.baseUrl}/codec/decode`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(stranger.headers.get('access-control-allow-origin'), null);
    const strangerPost = await decode([jsonPayload(1)], { origin: 'http://evil.example' });
    assert.equal(strangerPost.headers.get('access-control-allow-origin'), null);
  });
});

/** The codec server's access rules (security): keys, organisations, CORS with `*`. */
describe('who may use the codec server', () => {
  const key = generateKey();
  let stack: TestStack;
  let worker: { stop(): Promise<void> };
  let rawConnection: Connection;
  let rawClient: Client;
  const otherOrg = `codec-org-${randomUUID().slice(0, 8)}`;
  let other: ApiClient;

  before(async () => {
    const config = testConfig({ PAYLOAD_ENCRYPTION_KEY: key, PAYLOAD_ENCRYPTION_KEY_ID: KEY_ID });
    stack = await startApi(config);
    worker = await startWorker(config);
    other = await stack.clientForOrg(otherOrg);
    rawConnection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
    rawClient = new Client({ connection: rawConnection, namespace: config.TEMPORAL_NAMESPACE });
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
    await rawConnection?.close();
  });

  const toJson = (p: Payload): JsonPayload => ({
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? []).toString('base64'),
  });
  const decodeAs = (client: ApiClient, payloads: JsonPayload[]) => client.post('/codec/decode', { payloads });
  const stillEncrypted = (p: JsonPayload) => unb64(p.metadata?.encoding) === ENCRYPTED_ENCODING;

  /** Every payload of a finished task's agent history, as stored (encrypted). */
  async function agentHistoryPayloads(client: ApiClient, marker: string): Promise<JsonPayload[]> {
    const agent = await client.createAgent({ name: `Codec ${marker}`, objective: 'Keep secrets' });
    const task = await client.createTask({
      agentId: agent.id,
      title: `handle ${marker}`,
      input: { note: marker, script: [{ answer: `done with ${marker}` }] },
    });
    assert.equal((await client.waitForTask(task.id)).status, 'completed');
    const events = await idleAgentHistory({ ...stack, api: client }, agent.id, async () => {
      const page = await rawClient.workflowService.getWorkflowExecutionHistory({
        namespace: stack.config.TEMPORAL_NAMESPACE,
        execution: { workflowId: agentWorkflowId(agent.id) },
      });
      return page.history?.events ?? [];
    });
    const payloads = collectPayloads(events).filter(
      (p) => Buffer.from(p.metadata?.encoding ?? []).toString() === ENCRYPTED_ENCODING,
    );
    assert.ok(payloads.length >= 3);
    return payloads.map(toJson);
  }

  it('answers 401 without a valid key, like /api/v1; preflight needs none', async () => {
    const anonymous = new ApiClient(stack.api.baseUrl);
    for (const path of ['/codec/decode', '/codec/encode', '/codec/default/decode']) {
      const res = await anonymous.post(path, { payloads: [jsonPayload(1)] });
      assert.equal(res.status, 401, `${path}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'unauthorized');
    }
    assert.equal(
      (
        await new ApiClient(stack.api.baseUrl, 'tao_not-a-real-key-not-a-real-key-not-a-real-k').post('/codec/decode', {
          payloads: [],
        })
      ).status,
      401,
    );
    const preflight = await fetch(`${stack.api.baseUrl}/codec/decode`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://127.0.0.1:8233',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://127.0.0.1:8233');
  });

  it("decodes for an organisation only its own payloads; the operators' organisation decodes all", async () => {
    const ours = `default-org-secret-${randomUUID()}`;
    const theirs = `other-org-secret-${randomUUID()}`;
    const defaultPayloads = await agentHistoryPayloads(stack.api, ours);
    const otherPayloads = await agentHistoryPayloads(other, theirs);

    // Another organisation's key gets the default org's payloads back untouched: still ciphertext.
    const foreign = await decodeAs(other, defaultPayloads);
    assert.equal(foreign.status, 200, JSON.stringify(foreign.body));
    assert.deepEqual(foreign.body.payloads, defaultPayloads);

    // Its own: those bound to it (its workflow and activity inputs, and its task's submission) decode, the
    // task input among them.
    const own = await decodeAs(other, otherPayloads);
    assert.equal(own.status, 200);
    const ownTexts = (own.body.payloads as JsonPayload[]).filter((p) => !stillEncrypted(p)).map((p) => unb64(p.data));
    assert.ok(
      ownTexts.some((t) => t.includes(`"note":"${theirs}"`)),
      'the org reads its own task input',
    );
    for (const p of otherPayloads.filter((p) => p.metadata?.[METADATA_ENCRYPTION_ORG]))
      assert.equal(unb64(p.metadata![METADATA_ENCRYPTION_ORG]), otherOrg);
    // Payloads the codec could not bind (results, summaries) stay encrypted for it.
    const unbound = (own.body.payloads as JsonPayload[]).filter(
      (_p, i) => !otherPayloads[i]!.metadata?.[METADATA_ENCRYPTION_ORG],
    );
    assert.ok(unbound.length > 0 && unbound.every(stillEncrypted));

    // The operators' organisation (ADMIN_ORG_ID, here DEFAULT_ORG_ID) reads everything.
    const admin = await decodeAs(stack.api, [...defaultPayloads, ...otherPayloads]);
    assert.equal(admin.status, 200);
    assert.ok((admin.body.payloads as JsonPayload[]).every((p) => !stillEncrypted(p)));
    assert.ok((admin.body.payloads as JsonPayload[]).some((p) => unb64(p.data).includes(`"note":"${theirs}"`)));

    // Relabelling a payload for another organisation does not open it: its key was derived for the first.
    const bound = otherPayloads.find((p) => p.metadata?.[METADATA_ENCRYPTION_ORG])!;
    const relabelled = {
      ...bound,
      metadata: { ...bound.metadata, [METADATA_ENCRYPTION_ORG]: b64(stack.config.DEFAULT_ORG_ID) },
    };
    const forged = await decodeAs(stack.api, [relabelled]);
    assert.equal(forged.status, 400);
    assert.equal(forged.body.error.code, 'decryption_failed');
    // Nor does the plain master key: an org's payload is not readable with another org's derived key or without one.
    const stripped = {
      ...bound,
      metadata: {
        encoding: bound.metadata!.encoding!,
        [METADATA_ENCRYPTION_KEY_ID]: bound.metadata![METADATA_ENCRYPTION_KEY_ID]!,
      },
    };
    assert.equal((await decodeAs(stack.api, [stripped])).body.error?.code, 'decryption_failed');
  });

  it('still decodes payloads written before organisation binding, for the operators only', async () => {
    // The format before this change: no org metadata, the configured key itself.
    const [old] = await createPayloadCodec({ key, keyId: KEY_ID }).encode([
      { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"written long ago"') },
    ]);
    assert.equal(old!.metadata![METADATA_ENCRYPTION_ORG], undefined);
    const asAdmin = await decodeAs(stack.api, [toJson(old!)]);
    assert.equal(unb64(asAdmin.body.payloads[0].data), '"written long ago"');
    const asOther = await decodeAs(other, [toJson(old!)]);
    assert.ok(stillEncrypted(asOther.body.payloads[0]));
    // Encoding through the codec server binds to the caller's organisation.
    const encoded = await other.post('/codec/encode', { payloads: [jsonPayload({ mine: true })] });
    assert.equal(unb64(encoded.body.payloads[0].metadata[METADATA_ENCRYPTION_ORG]), otherOrg);
    assert.deepEqual(JSON.parse(unb64((await decodeAs(other, encoded.body.payloads)).body.payloads[0].data)), {
      mine: true,
    });
  });

  it('with CODEC_CORS_ORIGINS=* answers any origin without credentials', async () => {
    const open = await startApi(
      testConfig({ PAYLOAD_ENCRYPTION_KEY: key, PAYLOAD_ENCRYPTION_KEY_ID: KEY_ID, CODEC_CORS_ORIGINS: '*' }),
    );
    try {
      const preflight = await fetch(`${open.api.baseUrl}/codec/decode`, {
        method: 'OPTIONS',
        headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
      });
      assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
      assert.equal(preflight.headers.get('access-control-allow-credentials'), null);
      const post = await open.api.request(
        'POST',
        '/codec/decode',
        { payloads: [] },
        { headers: { origin: 'http://evil.example' } },
      );
      assert.equal(post.headers.get('access-control-allow-origin'), '*');
      assert.equal(post.headers.get('access-control-allow-credentials'), null);
      // The configured Web UI (TEMPORAL_UI_URL) is still named, with credentials.
      const uiOrigin = new URL(open.config.TEMPORAL_UI_URL).origin;
      const ui = await open.api.request('POST', '/codec/decode', { payloads: [] }, { headers: { origin: uiOrigin } });
      assert.equal(ui.headers.get('access-control-allow-origin'), uiOrigin);
      assert.equal(ui.headers.get('access-control-allow-credentials'), 'true');
    } finally {
      await open.stop();
    }
  });

  it('opens /codec without a key only on request, and only on a loopback API', async () => {
    assert.throws(
      () => loadConfig({ CODEC_ALLOW_UNAUTHENTICATED: 'true', API_HOST: '0.0.0.0' }),
      /CODEC_ALLOW_UNAUTHENTICATED/,
    );
    assert.equal(loadConfig({ CODEC_ALLOW_UNAUTHENTICATED: 'true' }).API_HOST, '127.0.0.1');
    assert.equal(loadConfig({}).API_HOST, '127.0.0.1', 'the API binds loopback unless told otherwise');
  });
});

/**
 * The Web UI decrypting in a real browser: a dev server of its own started with `--ui-codec-endpoint`
 * pointing at this API's /codec (the runner's dev server cannot know the API's port), whose page calls
 * the codec server cross-origin (preflight included) and shows the decrypted summary.
 */
describe(
  'the Web UI shows encrypted payloads through the codec server (headless Chromium)',
  { timeout: 240_000 },
  () => {
    let dev: DevServerHandle | undefined;
    let worker: { stop(): Promise<void> } | undefined;
    let stack: TestStack | undefined;
    let chrome: ChromiumSession | undefined;
    let api: ApiClient;

    before(async () => {
      const apiPort = await getFreePort();
      dev = await startDevServer({
        cliPath: process.env.TEMPORAL_CLI_PATH,
        inMemory: true,
        port: 0,
        uiPort: 0,
        codecEndpoint: `http://127.0.0.1:${apiPort}/codec`,
      });
      // The UI's origin (random port) is allowed through TEMPORAL_UI_URL, not the CODEC_CORS_ORIGINS default.
      // The dev server's Web UI has no OIDC, so it cannot send a key: the documented opt-in on a loopback API.
      const config = testConfig({
        TEMPORAL_ADDRESS: dev.address,
        TEMPORAL_UI_URL: dev.uiUrl!,
        PAYLOAD_ENCRYPTION_KEY: generateKey(),
        PAYLOAD_ENCRYPTION_KEY_ID: 'ui-key',
        CODEC_ALLOW_UNAUTHENTICATED: 'true',
      });
      stack = await startApi(config, { port: apiPort });
      api = stack.api;
      worker = await startWorker(config);
    });
    after(async () => {
      await chrome?.close();
      await worker?.stop();
      await stack?.stop();
      await dev?.stop();
    });

    it('decrypts the agent summary on the workflow page', async () => {
      const agent = await api.createAgent({ name: `UI agent ${SECRET}`, objective: 'Be read in a browser' });
      const task = await api.createTask({
        agentId: agent.id,
        title: `show ${SECRET}`,
        input: { script: [{ answer: 'ok' }] },
      });
      assert.equal((await api.waitForTask(task.id)).status, 'completed');

      chrome = await launchChromium();
      const page = chrome.page;
      const decodeCalls: { status: number; allowOrigin: string | undefined }[] = [];
      page.on('response', (res) => {
        if (res.url().endsWith('/codec/decode') && res.request().method() === 'POST') {
          decodeCalls.push({ status: res.status(), allowOrigin: res.headers()['access-control-allow-origin'] });
        }
      });
      await page.goto(`${dev!.uiUrl}/namespaces/default/workflows/${agentWorkflowId(agent.id)}`, {
        waitUntil: 'domcontentloaded',
      });
      await page
        .getByRole('heading', { name: agentWorkflowId(agent.id) })
        .first()
        .waitFor({ timeout: 60_000 });
      await page.getByRole('tab', { name: 'User Metadata' }).click();
      const expected = `Agent UI agent ${SECRET} (general, autopilot)`;
      const deadline = Date.now() + 60_000;
      let shown: string | Error = '';
      while (Date.now() < deadline && shown !== expected) {
        shown = await markdownText(page, 'Summary').catch((err: Error) => err);
        if (shown !== expected) await sleep(500);
      }
      if (shown !== expected) {
        const file = path.join(
          process.env.TEST_OUTPUT_DIR ?? path.resolve(__dirname, '../test-output'),
          'codec-web-ui-failed.png',
        );
        await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
        assert.fail(
          `the Summary never showed ${JSON.stringify(expected)}: ${shown instanceof Error ? shown.message.split('\n')[0] : JSON.stringify(shown)} (codec calls: ${JSON.stringify(decodeCalls)}; screenshot ${file})`,
        );
      }
      assert.ok(decodeCalls.length > 0, 'the page called the codec server');
      assert.ok(
        decodeCalls.every((c) => c.status === 200 && c.allowOrigin === dev!.uiUrl),
        JSON.stringify(decodeCalls),
      );
    });
  },
);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The text of the markdown the UI renders (in an iframe) under a heading of the User Metadata tab. */
async function markdownText(page: Page, heading: string): Promise<string> {
  const iframe = page
    .locator('h3', { hasText: new RegExp(`^\\s*${heading}\\s*$`) })
    .locator('xpath=ancestor::div[count(.//h3)=1][.//iframe][1]//iframe');
  const frame = await (await iframe.elementHandle({ timeout: 5_000 }))!.contentFrame();
  if (!frame) throw new Error(`the iframe under "${heading}" has no document`);
  const text = await frame.locator('body').innerText({ timeout: 5_000 });
  return text
    .replace(/[\u201C\u201D\u201E]/g, '"')
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/\s+/g, ' ')
    .trim();
}
