import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { insertCrew } from '../lib/records/crews';
import { createLogger } from '../lib/logger';
import { startApi, testConfig, type ApiClient, type TestStack } from './helpers/stack';

/**
 * What a tenant with a valid key may not do to others or to the service: blank strings in other
 * organisations' log lines by marking them secret, or make one request read unbounded listings.
 */
describe('tenant limits (security)', () => {
  const lines: string[] = [];
  let stack: TestStack;
  let orgA: ApiClient;
  let orgB: ApiClient;

  before(async () => {
    stack = await startApi(testConfig(), {
      logger: createLogger('api', 'info', { write: (line: string) => lines.push(line) }),
    });
    orgA = await stack.clientForOrg(`sec-a-${randomUUID().slice(0, 8)}`);
    orgB = await stack.clientForOrg(`sec-b-${randomUUID().slice(0, 8)}`);
  });
  after(async () => {
    await stack?.stop();
  });

  const linesOf = (requestId: string) => lines.filter((l) => l.includes(`"${requestId}"`));

  it("a value one organisation marks secret is scrubbed from its own log lines, never from another organisation's", async () => {
    const marker = `victim-visible-${randomUUID()}`;
    // Org A marks the string secret (the task itself is refused: the body is read all the same).
    const marked = await orgA.post('/api/v1/tasks', {
      agentId: randomUUID(),
      title: 'mark',
      input: { secrets: { token: marker } },
    });
    assert.ok(marked.status >= 400 && marked.status < 500, JSON.stringify(marked.body));

    const idA = `req-a-${randomUUID()}`;
    const idB = `req-b-${randomUUID()}`;
    await orgB.request('GET', `/api/v1/nothing/${marker}`, undefined, { headers: { 'x-request-id': idB } });
    await orgA.request('GET', `/api/v1/nothing/${marker}`, undefined, { headers: { 'x-request-id': idA } });
    await new Promise((r) => setTimeout(r, 200));

    assert.ok(linesOf(idB).length > 0 && linesOf(idA).length > 0, 'both requests were logged');
    assert.ok(
      linesOf(idB).some((l) => l.includes(marker)),
      `org B's line keeps the string: ${linesOf(idB).join('\n')}`,
    );
    assert.ok(
      linesOf(idA).every((l) => !l.includes(marker)),
      `org A's own line is scrubbed: ${linesOf(idA).join('\n')}`,
    );
    assert.ok(linesOf(idA).some((l) => l.includes('[redacted]')));
  });

  it('pages chat history: default 50, at most 200, offset bounded; out of range is 400', async () => {
    const sessionId = randomUUID();
    const orgId = stack.config.DEFAULT_ORG_ID;
    const turnId = randomUUID();
    await stack.db.query(
      `INSERT INTO chat_messages (org_id, session_id, turn_id, seq, role, content, created_at)
       SELECT $1, $2, $3, n, CASE WHEN n % 2 = 0 THEN 'user' ELSE 'assistant' END, 'message ' || n, now() + n * interval '1 millisecond'
       FROM generate_series(1, 230) AS n`,
      [orgId, sessionId, turnId],
    );
    const first = await stack.api.get(`/api/v1/chat/${sessionId}`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.messages.length, 50);
    assert.equal(first.body.limit, 50);
    assert.equal(first.body.messages[0].content, 'message 1');
    const big = await stack.api.get(`/api/v1/chat/${sessionId}?limit=200&offset=200`);
    assert.equal(big.body.messages.length, 30);
    assert.equal(big.body.messages[0].content, 'message 201');
    assert.equal((await stack.api.get(`/api/v1/chat/${sessionId}?offset=100000`)).body.messages.length, 0);
    for (const query of ['limit=201', 'limit=0', 'offset=100001', 'offset=-1', 'limit=abc']) {
      const res = await stack.api.get(`/api/v1/chat/${sessionId}?${query}`);
      assert.equal(res.status, 400, `${query}: ${JSON.stringify(res.body)}`);
    }
    // Another organisation still gets a 404, whatever the page.
    assert.equal((await orgB.get(`/api/v1/chat/${sessionId}?limit=10`)).status, 404);
  });

  it("pages a crew's messages and tasks with the same bounds", async () => {
    const crewId = randomUUID();
    await insertCrew(stack.db, {
      id: crewId,
      orgId: stack.config.DEFAULT_ORG_ID,
      name: 'paged',
      goal: 'talk a lot',
      process: 'sequential',
      assignment: 'round-robin',
      members: [],
      input: {},
    });
    await stack.db.query(
      `INSERT INTO crew_messages (crew_id, seq, message_id, type, content, sent_at)
       SELECT $1, n, 'm' || n, 'note', 'crew message ' || n, now() FROM generate_series(1, 260) AS n`,
      [crewId],
    );
    const first = await stack.api.get(`/api/v1/crews/${crewId}`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.messages.length, 50);
    assert.deepEqual([first.body.limit, first.body.offset], [50, 0]);
    const last = await stack.api.get(`/api/v1/crews/${crewId}?limit=200&offset=250`);
    assert.equal(last.body.messages.length, 10);
    assert.equal(last.body.messages[0].content, 'crew message 251');
    assert.deepEqual(last.body.tasks, []);
    for (const query of ['limit=500', 'offset=200000'])
      assert.equal((await stack.api.get(`/api/v1/crews/${crewId}?${query}`)).status, 400, query);
  });
});
