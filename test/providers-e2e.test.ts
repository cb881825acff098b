import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFakeAnthropic, type FakeAnthropicServer } from './helpers/fake-anthropic-server';
import { openAiErrorBody, startFakeOpenAi, type FakeOpenAiServer } from './helpers/fake-openai-server';
import { startApi, startWorker, testConfig, waitFor, type TestStack } from './helpers/stack';

/**
 * Real providers, end to end: tasks run through the worker against local servers that speak the
 * OpenAI and Anthropic wire formats. Faults travel through Temporal's activity retries.
 */
describe('providers through tasks', () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> };
  let openai: FakeOpenAiServer;
  let anthropic: FakeAnthropicServer;

  before(async () => {
    [openai, anthropic] = await Promise.all([startFakeOpenAi(), startFakeAnthropic()]);
    const config = testConfig({
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: openai.url,
      ANTHROPIC_API_KEY: 'sk-ant-test',
      ANTHROPIC_BASE_URL: anthropic.url,
      // These tests script each provider conversation exactly; a priority-scoring call would take a scripted reply.
      PRIORITY_SCORING: 'off',
      CIRCUIT_FAILURE_THRESHOLD: '2',
      CIRCUIT_RECOVERY_SECONDS: '600',
      LLM_TIMEOUT_SECONDS: '5',
    });
    stack = await startApi(config);
    worker = await startWorker(config);
  });
  after(async () => {
    await worker?.stop();
    await stack?.stop();
    await Promise.all([openai?.close(), anthropic?.close()]);
  });

  const openAiAnswer = (content: string) => ({
    kind: 'completion' as const,
    content,
    usage: { promptTokens: 12, completionTokens: 3 },
  });
  const anthropicAnswer = (text: string) => ({
    kind: 'message' as const,
    content: [{ type: 'text' as const, text }],
    usage: { inputTokens: 20, outputTokens: 4 },
  });
  const chatRequests = () => openai.requests.filter((r) => r.path.endsWith('/chat/completions'));

  it('honours 429 retry-after through activity retries, then completes with the real usage', async () => {
    const agent = await stack.api.createAgent({
      name: 'OpenAI agent',
      objective: 'Answer',
      provider: 'openai',
      model: 'gpt-test',
    });
    const before = chatRequests().length;
    openai.enqueue({
      kind: 'error',
      status: 429,
      body: openAiErrorBody('slow down', 'rate_limit_exceeded'),
      headers: { 'retry-after': '2' },
    });
    openai.enqueue(openAiAnswer('Paris is the capital of France.'));
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'capital of France?' })).id,
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.output.answer, 'Paris is the capital of France.');
    assert.deepEqual(done.usage, { inputTokens: 12, outputTokens: 3 });
    const calls = openai.requests.slice(before).filter((r) => r.path.endsWith('/chat/completions'));
    assert.equal(calls.length, 2);
    const body = calls[1]!.body as { model: string; messages: { role: string; content: string }[]; tools: unknown[] };
    assert.equal(body.model, 'gpt-test');
    assert.match(body.messages[1]!.content, /Task: capital of France\?/);
    assert.ok(body.tools.length > 0, "the agent's tools are offered with their JSON schemas");
  });

  it('fails fast on 401 as a non-retryable failure with the reason on the task', async () => {
    const agent = await stack.api.createAgent({ name: 'Bad key', objective: 'Fail', provider: 'openai' });
    const before = chatRequests().length;
    openai.enqueue({
      kind: 'error',
      status: 401,
      body: openAiErrorBody('Incorrect API key provided', 'invalid_request_error', 'invalid_api_key'),
    });
    const done = await stack.api.waitForTask((await stack.api.createTask({ agentId: agent.id, title: 'anything' })).id);
    assert.equal(done.status, 'failed');
    assert.match(done.error, /openai: .*(401|API key)/i);
    assert.equal(chatRequests().length - before, 1, 'not retried');
    // Bad credentials need an operator: the agent stops taking goals until resumed. The agent learns the
    // outcome from its child a moment after the task row is final.
    await waitFor(
      async () => (await stack.api.get(`/api/v1/agents/${agent.id}`)).body.status === 'ERROR',
      'the agent to enter ERROR',
    );
  });

  it('returns malformed tool arguments to the model, which repairs its call', async () => {
    const agent = await stack.api.createAgent({ name: 'Repairer', objective: 'Store things', provider: 'openai' });
    openai.enqueue({
      kind: 'completion',
      toolCalls: [{ id: 'call_1', name: 'memory_write', arguments: '{"key": "city", "value": ' }],
    });
    openai.enqueue({
      kind: 'completion',
      toolCalls: [{ id: 'call_2', name: 'memory_write', arguments: '{"key":"city","value":"Paris"}' }],
    });
    openai.enqueue(openAiAnswer('Stored.'));
    const before = chatRequests().length;
    const done = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'store the city' })).id,
    );
    assert.equal(done.status, 'completed');
    const second = chatRequests()[before + 1]!.body as {
      messages: { role: string; content: string; tool_call_id?: string }[];
    };
    const toolReply = second.messages.find((m) => m.role === 'tool' && m.tool_call_id === 'call_1');
    assert.match(toolReply!.content, /not valid JSON/);
    const stored = await stack.db.query('SELECT value FROM memory WHERE scope = $1 AND key = $2', [agent.id, 'city']);
    assert.equal(stored.rows[0].value, 'Paris');
  });

  it('falls back to the next provider and stops calling one whose circuit is open', async () => {
    const agent = await stack.api.createAgent({
      name: 'Resilient',
      objective: 'Always answer',
      provider: 'openai',
      fallbackProviders: ['anthropic'],
    });
    const run = async (title: string) =>
      stack.api.waitForTask((await stack.api.createTask({ agentId: agent.id, title })).id);
    const openAiBefore = chatRequests().length;

    for (let i = 0; i < 2; i++) {
      openai.enqueue({ kind: 'error', status: 500, body: openAiErrorBody('boom', 'server_error') });
      anthropic.enqueue(anthropicAnswer(`answer ${i} from anthropic`));
      const done = await run(`question ${i}`);
      assert.equal(done.status, 'completed');
      assert.equal(done.output.answer, `answer ${i} from anthropic`);
    }
    assert.equal(chatRequests().length - openAiBefore, 2);

    // Two consecutive failures opened OpenAI's circuit: the next task goes straight to Anthropic.
    anthropic.enqueue(anthropicAnswer('answer while open'));
    const third = await run('question while open');
    assert.equal(third.output.answer, 'answer while open');
    assert.equal(chatRequests().length - openAiBefore, 2, 'OpenAI was not called while its circuit was open');

    const health = await stack.api.get('/health');
    assert.ok(
      health.body.providers.openCircuits.some(
        (c: { provider: string; state: string }) => c.provider === 'openai' && c.state === 'open',
      ),
      JSON.stringify(health.body),
    );
  });
});
