import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { chatWorkflowId } from '../contract/definitions';
import { localActivities } from './helpers/history';
import { startApi, startStack, startWorker, testConfig, waitFor, type TestStack } from './helpers/stack';

interface SseEvent {
  event: string;
  data: any;
  at: number;
}

/** Posts a chat message and reads the SSE stream event by event; `stopAfter` aborts when it returns true. */
async function chat(
  api: { baseUrl: string; apiKey?: string },
  body: Record<string, unknown>,
  stopAfter?: (e: SseEvent) => boolean,
): Promise<SseEvent[]> {
  const abort = new AbortController();
  const res = await fetch(`${api.baseUrl}/api/v1/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${api.apiKey}` },
    body: JSON.stringify(body),
    signal: abort.signal,
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  const reader = res.body!.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(frame)?.[1] ?? 'message';
        const data = JSON.parse(/^data: (.*)$/m.exec(frame)?.[1] ?? 'null');
        const parsed = { event, data, at: Date.now() };
        events.push(parsed);
        if (stopAfter?.(parsed)) {
          abort.abort();
          return events;
        }
      }
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  }
  return events;
}

describe('chat', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> };
  let agent: any;

  before(async () => {
    const config = testConfig();
    stack = await startApi(config);
    worker = await startWorker(config);
    agent = await stack.api.createAgent({ name: 'Chatty', objective: 'Talk', type: 'support' });
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
  });

  it('streams tokens before the answer is finished, then stores the whole turn', async () => {
    const events = await chat(stack.api, { agentId: agent.id, message: 'hello there, how are you today?' });
    const session = events.find((e) => e.event === 'session')!;
    const tokens = events.filter((e) => e.event === 'token');
    const final = events.find((e) => e.event === 'message')!;
    assert.ok(session && final, JSON.stringify(events.map((e) => e.event)));
    assert.ok(tokens.length > 5, `several tokens (${tokens.length})`);
    assert.ok(tokens[0]!.at < final.at - 50, 'the first token arrived well before the final message');
    assert.equal(tokens.map((t) => t.data.delta).join(''), final.data.content, 'tokens add up to the answer');
    assert.match(final.data.content, /\[offline\] You said: "hello there/);

    const history = await stack.api.get(`/api/v1/chat/${session.data.sessionId}`);
    assert.equal(history.status, 200);
    assert.deepEqual(
      history.body.messages.map((m: any) => m.role),
      ['user', 'assistant'],
    );
    const answer = history.body.messages[1];
    assert.equal(answer.agentType, 'support');
    assert.equal(answer.content, final.data.content);
    assert.ok(answer.metadata.usage.outputTokens > 0);

    // The session continues with its context.
    const second = await chat(stack.api, {
      agentType: 'support',
      sessionId: session.data.sessionId,
      message: 'second message',
    });
    assert.ok(second.some((e) => e.event === 'message'));
    const longer = await stack.api.get(`/api/v1/chat/${session.data.sessionId}`);
    assert.equal(longer.body.messages.length, 4);
  });

  it('a new session skips the stored-turns lookup; a session whose run ended reloads its turns', async () => {
    const first = await chat(stack.api, { agentId: agent.id, message: 'my name is Ada' });
    const sessionId: string = first.find((e) => e.event === 'session')!.data.sessionId;
    // Activities and local activities (the records), in the order the run scheduled them.
    const scheduled = async (runId?: string) => {
      const { events } = await stack.client.workflow.getHandle(chatWorkflowId(sessionId), runId).fetchHistory();
      return (events ?? []).flatMap(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? localActivities([e]),
      );
    };
    assert.deepEqual(await scheduled(), ['chatModel', 'saveChatTurn'], 'no loadChatHistory for a session just opened');

    // The run ends (as an idle session does); the next message starts a run that must load the stored turn.
    const handle = stack.client.workflow.getHandle(chatWorkflowId(sessionId));
    await handle.terminate('test: the session ended');
    const second = await chat(stack.api, { agentId: agent.id, sessionId, message: 'what is my name?' });
    assert.ok(second.some((e) => e.event === 'message'));
    const { runId } = await handle.describe();
    assert.deepEqual(await scheduled(runId), ['loadChatHistory', 'chatModel', 'saveChatTurn']);
    const history = await stack.api.get(`/api/v1/chat/${sessionId}`);
    assert.equal(history.body.messages.length, 4);
  });

  it("calls the agent's tools and reports them as events and in the history metadata", async () => {
    const events = await chat(stack.api, { agentId: agent.id, message: 'remember the code word is blue' });
    const call = events.find((e) => e.event === 'tool_call');
    const result = events.find((e) => e.event === 'tool_result');
    assert.equal(call?.data.name, 'memory_write');
    assert.equal(result?.data.isError, false);
    const sessionId = events[0]!.data.sessionId;
    const history = await stack.api.get(`/api/v1/chat/${sessionId}`);
    assert.equal(history.body.messages[1].metadata.toolCalls[0].name, 'memory_write');
    const stored = await stack.db.query('SELECT value FROM memory WHERE scope = $1 AND key = $2', [agent.id, 'notes']);
    assert.deepEqual(stored.rows[0].value, ['the code word is blue']);
  });

  it('stops generating when the client disconnects and stores nothing of that turn', async () => {
    const long = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');
    const events = await chat(stack.api, { agentId: agent.id, message: long }, (e) => e.event === 'token');
    const { sessionId, turnId } = events.find((e) => e.event === 'session')!.data;
    const handle = stack.client.workflow.getHandle(chatWorkflowId(sessionId));
    // 300 words at 15 ms each would take 4.5 s; the cancelled activity must end well before that.
    const cancelledAt = Date.now();
    await waitFor(
      async () => {
        const history = await handle.fetchHistory();
        return history.events?.some((e) => e.activityTaskCanceledEventAttributes);
      },
      'the model call to be cancelled',
      15_000,
    );
    assert.ok(Date.now() - cancelledAt < 4500, 'generation stopped early');
    const stored = await stack.db.query('SELECT count(*)::int AS n FROM chat_messages WHERE turn_id = $1', [turnId]);
    assert.equal(stored.rows[0].n, 0, 'no half-written turn');
  });

  it('rejects bad requests with 4xx JSON', async () => {
    const both = await stack.api.post('/api/v1/chat', { agentId: agent.id, agentType: 'support', message: 'hi' });
    assert.equal(both.status, 400);
    assert.match(both.body.error.message, /exactly one of agentId or agentType/);
    assert.equal((await stack.api.post('/api/v1/chat', { agentId: randomUUID(), message: 'hi' })).status, 404);
    assert.equal((await stack.api.post('/api/v1/chat', { agentId: agent.id, message: '   ' })).status, 400);
    assert.equal((await stack.api.get(`/api/v1/chat/${randomUUID()}`)).status, 404);
  });

  it('answers JSON when streaming is off', async () => {
    const res = await stack.api.post('/api/v1/chat', { agentId: agent.id, message: 'no stream please', stream: false });
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'completed');
    assert.match(res.body.content, /no stream please/);
  });
});

/** A stack with a 2,000-token budget per `windowSeconds` and chat turns admitted within `llmTimeoutSeconds`; the stack, read after `before`. */
function budgetedChatStack(windowSeconds: number, llmTimeoutSeconds: number): () => TestStack {
  let stack: TestStack;
  before(async () => {
    stack = await startStack(
      testConfig({
        AGENTS_GLOBAL_TOKEN_BUDGET_PER_MINUTE: '2000',
        TOKEN_BUDGET_WINDOW_SECONDS: String(windowSeconds),
        TOKEN_RESERVATION_OUTPUT_TOKENS: '100',
        LLM_TIMEOUT_SECONDS: String(llmTimeoutSeconds),
      }),
    );
  });
  after(() => stack?.stop());
  return () => stack;
}

/** Spends the whole window's budget just now, as another agent's call would. */
const spendWholeBudget = (stack: TestStack) =>
  stack.db.query(
    `INSERT INTO token_ledger (id, org_id, agent_id, task_id, purpose, estimate, tokens, settled_at) VALUES ($1, $2, $3, NULL, 'step', 2000, 2000, now())`,
    [randomUUID(), stack.config.DEFAULT_ORG_ID, randomUUID()],
  );

describe('chat under governance', () => {
  const current = budgetedChatStack(5, 20);

  it('a turn waits for the token budget, says so on the stream, then answers; the turn is in the token ledger', async () => {
    const stack = current();
    const agent = await stack.api.createAgent({ name: 'Budgeted', objective: 'Talk' });
    await spendWholeBudget(stack);
    const events = await chat(stack.api, { agentId: agent.id, message: 'are you there?' });
    const names = events.map((e) => e.event);
    const waiting = events.find((e) => e.event === 'waiting');
    assert.ok(waiting, `a waiting event: ${JSON.stringify(names)}`);
    assert.equal(waiting.data.reason, 'token_budget');
    assert.ok(names.indexOf('waiting') < names.indexOf('message'), JSON.stringify(names));
    const { turnId } = events.find((e) => e.event === 'session')!.data;
    const ledger = await stack.db.query(`SELECT purpose, tokens FROM token_ledger WHERE task_id = $1`, [turnId]);
    assert.equal(ledger.rows.length, 1, 'one reservation, settled to the real usage');
    assert.equal(ledger.rows[0].purpose, 'chat');
    assert.ok(ledger.rows[0].tokens > 0);
  });

  it('approvalRequiredTools gate chat tool calls, even of an autopilot agent', async () => {
    const stack = current();
    const agent = await stack.api.createAgent({
      name: 'Careful',
      objective: 'Talk',
      autonomy: 'autopilot',
      approvalRequiredTools: ['memory_write'],
    });
    const events = await chat(stack.api, { agentId: agent.id, message: 'remember the code word is green' });
    const result = events.find((e) => e.event === 'tool_result');
    assert.ok(!result || result.data.isError, 'no tool ran');
    const final = events.find((e) => e.event === 'message');
    assert.ok(final, JSON.stringify(events.map((e) => e.event)));
    assert.match(final.data.toolCalls[0].result, /needs a human's approval/);
    const stored = await stack.db.query('SELECT count(*)::int AS n FROM memory WHERE scope = $1', [agent.id]);
    assert.equal(stored.rows[0].n, 0);
  });
});

describe('chat when the budget does not free in time', () => {
  const current = budgetedChatStack(30, 2);

  it('ends the turn with a clear error and stores nothing of it', async () => {
    const stack = current();
    const agent = await stack.api.createAgent({ name: 'Starved', objective: 'Talk' });
    await spendWholeBudget(stack);
    const events = await chat(stack.api, { agentId: agent.id, message: 'hello?' });
    const error = events.find((e) => e.event === 'error');
    assert.ok(error, JSON.stringify(events.map((e) => e.event)));
    assert.match(error.data.error, /not admitted within 2 s: waiting for global token budget/);
    const { turnId } = events.find((e) => e.event === 'session')!.data;
    const stored = await stack.db.query('SELECT count(*)::int AS n FROM chat_messages WHERE turn_id = $1', [turnId]);
    assert.equal(stored.rows[0].n, 0, 'nothing half-stored');
  });
});
