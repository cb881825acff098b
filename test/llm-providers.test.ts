/**
 * Provider adapters against loopback servers that speak the real wire protocols: the SDKs run
 * unmodified over real sockets, and the fakes validate requests like the real services do.
 *
 * Run: node --import tsx --test test/llm-providers.test.ts
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createAnthropicProvider } from '../activities/llm/anthropic';
import { createProviderRegistry } from '../activities/llm';
import { createOpenAiProvider } from '../activities/llm/openai';
import { loadConfig } from '../lib/config';
import {
  ProviderError,
  type LlmMessage,
  type LlmProvider,
  type LlmRequest,
  type ProviderErrorKind,
  type ToolSpec,
} from '../activities/llm/types';
import { anthropicErrorBody, startFakeAnthropic, type FakeAnthropicServer } from './helpers/fake-anthropic-server';
import { openAiErrorBody, startFakeOpenAi, type FakeOpenAiServer } from './helpers/fake-openai-server';

const WEATHER_TOOL: ToolSpec = {
  name: 'get_weather',
  description: 'Current weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

function ask(text: string, extra: Partial<LlmRequest> = {}): LlmRequest {
  return {
    model: 'test-model',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: text },
    ],
    tools: [],
    ...extra,
  };
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  return assert.fail('expected the call to reject');
}

async function expectProviderError(promise: Promise<unknown>, kind: ProviderErrorKind): Promise<ProviderError> {
  const err = await rejectionOf(promise);
  assert.ok(err instanceof ProviderError, `expected a ProviderError, got ${String(err)}`);
  assert.equal(err.kind, kind, `kind mismatch; message: ${err.message}`);
  return err;
}

/** Streams a completion and records, at the first token, how far the server had got. */
async function streamWithProbe(
  provider: LlmProvider,
  request: LlmRequest,
  progress: { framesSent: number; framesTotal: number },
) {
  const tokens: string[] = [];
  let framesAtFirstToken = -1;
  const response = await provider.complete(request, {
    onToken: (delta) => {
      if (tokens.length === 0) framesAtFirstToken = progress.framesSent;
      tokens.push(delta);
    },
  });
  return { response, tokens, framesAtFirstToken, framesTotal: progress.framesTotal };
}

function bodyOf(request: { body: unknown }): Record<string, unknown> {
  assert.equal(typeof request.body, 'object', 'request body should be JSON');
  return request.body as Record<string, unknown>;
}

// =============================================================================================
// OpenAI and OpenAI-compatible

const OPENAI_VARIANTS = [
  { name: 'openai' as const, tokenField: 'max_completion_tokens', otherTokenField: 'max_tokens' },
  { name: 'openai-compatible' as const, tokenField: 'max_tokens', otherTokenField: 'max_completion_tokens' },
];

for (const variant of OPENAI_VARIANTS) {
  describe(`${variant.name} provider`, () => {
    let fake: FakeOpenAiServer;
    let provider: LlmProvider;
    const makeProvider = (timeoutMs = 5000): LlmProvider =>
      createOpenAiProvider({
        apiKey: 'sk-test',
        baseURL: fake.url,
        defaultModel: 'default-model',
        timeoutMs,
        name: variant.name,
      });

    beforeEach(async () => {
      fake = await startFakeOpenAi();
      provider = makeProvider();
    });
    afterEach(() => fake.close());

    it('returns a plain answer with usage and sends the documented request shape', async () => {
      fake.enqueue({
        kind: 'completion',
        content: 'Hello there.',
        usage: { promptTokens: 12, completionTokens: 3 },
        model: 'test-model-2025',
      });

      const response = await provider.complete(ask('Hi', { maxTokens: 50, temperature: 0.2 }));

      assert.deepEqual(response, {
        content: 'Hello there.',
        toolCalls: [],
        usage: { inputTokens: 12, outputTokens: 3 },
        finishReason: 'stop',
        provider: variant.name,
        model: 'test-model-2025',
      });
      assert.equal(fake.requests.length, 1);
      const [request] = fake.requests;
      assert.equal(request.path, '/v1/chat/completions');
      assert.equal(request.headers.authorization, 'Bearer sk-test');
      const body = bodyOf(request);
      assert.equal(body.model, 'test-model');
      assert.deepEqual(body.messages, [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ]);
      assert.equal(body[variant.tokenField], 50);
      assert.equal(body[variant.otherTokenField], undefined);
      assert.equal(body.temperature, 0.2);
      assert.equal('tools' in body, false, 'an empty tool list must be omitted');
      assert.equal(body.stream, undefined);
    });

    it('falls back to the default model when the request names none', async () => {
      fake.enqueue({ kind: 'completion', content: 'ok' });
      const response = await provider.complete(ask('Hi', { model: '' }));
      assert.equal(bodyOf(fake.requests[0]).model, 'default-model');
      assert.equal(response.model, 'default-model');
    });

    it('round-trips a tool call: tool_calls out, tool message with tool_call_id back', async () => {
      const call = { id: 'call_abc123', name: 'get_weather', arguments: '{"city":"Paris"}' };
      fake.enqueue({
        kind: 'completion',
        content: null,
        toolCalls: [call],
        usage: { promptTokens: 40, completionTokens: 9 },
      });
      fake.enqueue({ kind: 'completion', content: 'Sunny, 21°C.', usage: { promptTokens: 60, completionTokens: 6 } });

      const first = await provider.complete(ask('Weather in Paris?', { tools: [WEATHER_TOOL] }));
      assert.deepEqual(first.toolCalls, [call]);
      assert.equal(first.finishReason, 'tool_calls');
      assert.equal(first.content, '');
      assert.deepEqual(bodyOf(fake.requests[0]).tools, [
        {
          type: 'function',
          function: {
            name: WEATHER_TOOL.name,
            description: WEATHER_TOOL.description,
            parameters: WEATHER_TOOL.parameters,
          },
        },
      ]);

      const history: LlmMessage[] = [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: first.content, toolCalls: first.toolCalls },
        { role: 'tool', toolCallId: call.id, name: call.name, content: '{"tempC":21}' },
      ];
      const second = await provider.complete({ model: 'test-model', messages: history, tools: [WEATHER_TOOL] });

      assert.equal(second.content, 'Sunny, 21°C.');
      assert.equal(second.finishReason, 'stop');
      assert.equal(fake.requests.length, 2, 'the fake accepted the tool result (it rejects unpaired tool messages)');
      const messages = bodyOf(fake.requests[1]).messages as unknown[];
      assert.deepEqual(messages[1], {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }],
      });
      assert.deepEqual(messages[2], { role: 'tool', tool_call_id: call.id, content: '{"tempC":21}' });
    });

    it('streams tokens before the server sends the last chunk, with the same final response as non-streaming', async () => {
      const reply = {
        kind: 'completion' as const,
        content: 'One two three four five.',
        usage: { promptTokens: 8, completionTokens: 5 },
        chunkDelayMs: 30,
      };
      fake.enqueue(reply);
      fake.enqueue(reply);

      const plain = await provider.complete(ask('Count'));
      const streamed = await streamWithProbe(provider, ask('Count'), fake.stream);

      assert.ok(streamed.framesAtFirstToken >= 1, 'a token arrived');
      assert.ok(
        streamed.framesAtFirstToken < streamed.framesTotal,
        `first token seen after ${streamed.framesAtFirstToken}/${streamed.framesTotal} frames: not streamed incrementally`,
      );
      assert.deepEqual(streamed.tokens, ['One ', 'two ', 'three ', 'four ', 'five.']);
      assert.deepEqual(streamed.response, plain);
      assert.deepEqual(streamed.response.usage, { inputTokens: 8, outputTokens: 5 });
      const body = bodyOf(fake.requests[1]);
      assert.equal(body.stream, true);
      assert.deepEqual(body.stream_options, { include_usage: true });
    });

    it('assembles streamed tool call fragments by index into complete calls', async () => {
      const reply = {
        kind: 'completion' as const,
        content: 'Checking both.',
        toolCalls: [
          { id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris","unit":"C"}' },
          { id: 'call_2', name: 'get_weather', arguments: '{"city":"Oslo","unit":"C"}' },
        ],
        usage: { promptTokens: 30, completionTokens: 20 },
      };
      fake.enqueue(reply);
      fake.enqueue(reply);

      const plain = await provider.complete(ask('Paris and Oslo?', { tools: [WEATHER_TOOL] }));
      const streamed = await provider.complete(ask('Paris and Oslo?', { tools: [WEATHER_TOOL] }), {
        onToken: () => {},
      });

      assert.deepEqual(streamed.toolCalls, reply.toolCalls);
      assert.equal(streamed.finishReason, 'tool_calls');
      assert.deepEqual(streamed, plain);
    });

    it('assembles streamed tool calls whose deltas lack an index (older Ollama)', async () => {
      const toolCalls = [
        { id: 'call_a', name: 'get_weather', arguments: '{"city":"Rome"}' },
        { id: 'call_b', name: 'get_weather', arguments: '{"city":"Lima"}' },
      ];
      fake.enqueue({ kind: 'completion', content: null, toolCalls, omitToolCallIndex: true });
      const streamed = await provider.complete(ask('Rome and Lima?', { tools: [WEATHER_TOOL] }), { onToken: () => {} });
      assert.deepEqual(streamed.toolCalls, toolCalls);
    });

    it('classifies 429 as rate_limited with retry-after in seconds, without SDK retries', async () => {
      fake.enqueue({
        kind: 'error',
        status: 429,
        body: openAiErrorBody('Rate limit reached for requests', 'requests', 'rate_limit_exceeded'),
        headers: { 'retry-after': '7' },
      });
      const err = await expectProviderError(provider.complete(ask('Hi')), 'rate_limited');
      assert.equal(err.details.retryAfterMs, 7000);
      assert.equal(err.details.status, 429);
      assert.equal(err.details.provider, variant.name);
      assert.match(err.message, /Rate limit reached/);
      assert.equal(err.retryable, true);
      assert.equal(fake.requests.length, 1, 'the SDK must not retry on its own');
    });

    it('prefers retry-after-ms over retry-after', async () => {
      fake.enqueue({ kind: 'error', status: 429, headers: { 'retry-after-ms': '1500', 'retry-after': '9' } });
      const err = await expectProviderError(provider.complete(ask('Hi')), 'rate_limited');
      assert.equal(err.details.retryAfterMs, 1500);
    });

    it('treats an exhausted quota (429 insufficient_quota) as non-retryable', async () => {
      fake.enqueue({
        kind: 'error',
        status: 429,
        body: openAiErrorBody('You exceeded your current quota.', 'insufficient_quota', 'insufficient_quota'),
      });
      const err = await expectProviderError(provider.complete(ask('Hi')), 'auth');
      assert.equal(err.retryable, false);
    });

    it('classifies 500 as unavailable', async () => {
      fake.enqueue({
        kind: 'error',
        status: 500,
        body: openAiErrorBody('The server had an error while processing your request.', 'server_error'),
      });
      const err = await expectProviderError(provider.complete(ask('Hi')), 'unavailable');
      assert.equal(err.details.status, 500);
      assert.equal(fake.requests.length, 1, 'the SDK must not retry on its own');
    });

    it('classifies a connection reset as network', async () => {
      fake.enqueue({ kind: 'reset' });
      const err = await expectProviderError(provider.complete(ask('Hi')), 'network');
      assert.equal(err.details.provider, variant.name);
    });

    it('classifies a server that never answers as timeout', async () => {
      fake.enqueue({ kind: 'hang' });
      const started = Date.now();
      await expectProviderError(makeProvider(150).complete(ask('Hi')), 'timeout');
      assert.ok(Date.now() - started < 3000, 'the timeout must fire near timeoutMs');
    });

    it('classifies a stream that stalls mid-answer as timeout', async () => {
      fake.enqueue({ kind: 'completion', content: 'a b c d e f', stallAfterFrames: 2 });
      const tokens: string[] = [];
      await expectProviderError(makeProvider(200).complete(ask('Hi'), { onToken: (t) => tokens.push(t) }), 'timeout');
      assert.deepEqual(tokens, ['a '], 'tokens before the stall were delivered');
    });

    it('treats timeoutMs as an idle timeout while streaming: a slow but steady stream completes', async () => {
      fake.enqueue({ kind: 'completion', content: 'a b c d e f g h', chunkDelayMs: 60 });
      const response = await makeProvider(200).complete(ask('Hi'), { onToken: () => {} });
      assert.equal(response.content, 'a b c d e f g h');
    });

    it('classifies a stream that closes cleanly before finish_reason as network', async () => {
      const partial = {
        id: 'x',
        object: 'chat.completion.chunk',
        created: 1,
        model: 'm',
        choices: [{ index: 0, delta: { content: 'Half an ans' }, finish_reason: null }],
      };
      fake.enqueue({ kind: 'sse', chunks: [partial], done: false });
      await expectProviderError(provider.complete(ask('Hi'), { onToken: () => {} }), 'network');
    });

    it('classifies a stream cut before finish_reason as network', async () => {
      fake.enqueue({ kind: 'completion', content: 'a b c d e f', resetAfterFrames: 3 });
      await expectProviderError(provider.complete(ask('Hi'), { onToken: () => {} }), 'network');
    });

    it('classifies 401 as auth', async () => {
      fake.enqueue({
        kind: 'error',
        status: 401,
        body: openAiErrorBody('Incorrect API key provided: sk-test.', 'invalid_request_error', 'invalid_api_key'),
      });
      const err = await expectProviderError(provider.complete(ask('Hi')), 'auth');
      assert.equal(err.retryable, false);
    });

    it('classifies a context-length 400 as context_length', async () => {
      const message =
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.";
      // OpenAI wraps errors in `error` with a code; vLLM sends a flat body with a numeric code.
      const body =
        variant.name === 'openai'
          ? openAiErrorBody(message, 'invalid_request_error', 'context_length_exceeded', 'messages')
          : { object: 'error', message, type: 'BadRequestError', param: null, code: 400 };
      fake.enqueue({ kind: 'error', status: 400, body });
      const err = await expectProviderError(provider.complete(ask('Hi')), 'context_length');
      assert.match(err.message, /maximum context length/);
    });

    it('classifies other 400s as invalid_request (here: the fake rejecting an unpaired tool message)', async () => {
      const messages: LlmMessage[] = [
        { role: 'user', content: 'Hi' },
        { role: 'tool', toolCallId: 'call_missing', name: 'get_weather', content: '{}' },
      ];
      const err = await expectProviderError(provider.complete({ model: 'm', messages, tools: [] }), 'invalid_request');
      assert.match(err.message, /must be a response to a preceeding message with 'tool_calls'/);
    });

    it('classifies a truncated JSON body as unavailable', async () => {
      fake.enqueue({ kind: 'truncated' });
      await expectProviderError(provider.complete(ask('Hi')), 'unavailable');
    });

    it('returns malformed tool-call arguments raw instead of throwing, streaming or not', async () => {
      const call = { id: 'call_bad', name: 'get_weather', arguments: '{"city": "Par' };
      fake.enqueue({ kind: 'completion', toolCalls: [call] });
      fake.enqueue({ kind: 'completion', toolCalls: [call] });

      const plain = await provider.complete(ask('Hi', { tools: [WEATHER_TOOL] }));
      const streamed = await provider.complete(ask('Hi', { tools: [WEATHER_TOOL] }), { onToken: () => {} });

      assert.deepEqual(plain.toolCalls, [call]);
      assert.deepEqual(streamed.toolCalls, [call]);
    });

    it('reports a refusal field as finishReason refusal with the refusal text as content', async () => {
      const refusal = "I'm sorry, I can't help with that.";
      fake.enqueue({ kind: 'completion', content: null, refusal });
      fake.enqueue({ kind: 'completion', content: null, refusal });

      const plain = await provider.complete(ask('Something bad'));
      const streamed = await provider.complete(ask('Something bad'), { onToken: () => {} });

      assert.equal(plain.finishReason, 'refusal');
      assert.equal(plain.content, refusal);
      assert.deepEqual(streamed, plain);
    });

    it('maps finish_reason content_filter to refusal', async () => {
      fake.enqueue({ kind: 'completion', content: 'Partial', finishReason: 'content_filter' });
      const response = await provider.complete(ask('Hi'));
      assert.equal(response.finishReason, 'refusal');
      assert.equal(response.content, 'Partial');
    });

    it('maps finish_reason length', async () => {
      fake.enqueue({ kind: 'completion', content: 'Cut', finishReason: 'length' });
      assert.equal((await provider.complete(ask('Hi'))).finishReason, 'length');
    });

    it("rethrows the caller's abort as-is, not as a ProviderError", async () => {
      fake.enqueue({ kind: 'completion', content: 'a b c d e f', chunkDelayMs: 50 });
      const controller = new AbortController();
      const err = await rejectionOf(
        provider.complete(ask('Hi'), { signal: controller.signal, onToken: () => controller.abort() }),
      );
      assert.ok(!(err instanceof ProviderError), `expected the abort, got ${String(err)}`);
      assert.equal((err as Error).name, 'AbortError');
    });

    it('rethrows an exception from onToken untouched', async () => {
      fake.enqueue({ kind: 'completion', content: 'a b c' });
      const boom = new Error('sink closed');
      const err = await rejectionOf(
        provider.complete(ask('Hi'), {
          onToken: () => {
            throw boom;
          },
        }),
      );
      assert.equal(err, boom);
    });
  });
}

describe('ollama / openai-compatible provider credentials', () => {
  let fake: FakeOpenAiServer;
  beforeEach(async () => {
    fake = await startFakeOpenAi();
  });
  afterEach(() => fake.close());

  const registryFor = (env: Record<string, string>) =>
    createProviderRegistry(
      loadConfig({
        AI_PROVIDER: 'ollama',
        OLLAMA_BASE_URL: fake.url.replace(/\/v1\/?$/, ''),
        OLLAMA_MODEL: 'llama-test',
        ...env,
      }),
    );

  it('never sends OPENAI_API_KEY to OLLAMA_BASE_URL; without OLLAMA_API_KEY no credential at all', async () => {
    const openAiKey = 'sk-openai-must-stay-home';
    // The fake answers 401 to a request without a key, as OpenAI would; Ollama would answer. The request is what counts.
    await rejectionOf(registryFor({ OPENAI_API_KEY: openAiKey }).get(null).complete(ask('hello')));
    assert.equal(fake.requests.length, 1);
    const [request] = fake.requests;
    assert.equal(request.headers.authorization, undefined, 'no Authorization header');
    assert.equal(
      JSON.stringify(request.headers).includes(openAiKey),
      false,
      'the OpenAI key appears nowhere in the request',
    );
  });

  it('sends OLLAMA_API_KEY, and only it, when set', async () => {
    fake.enqueue({ kind: 'completion', content: 'hi' });
    const response = await registryFor({
      OPENAI_API_KEY: 'sk-openai-must-stay-home',
      OLLAMA_API_KEY: 'ollama-proxy-key',
    })
      .get('ollama')
      .complete(ask('hello'));
    assert.equal(response.content, 'hi');
    assert.equal(fake.requests[0]!.headers.authorization, 'Bearer ollama-proxy-key');
  });
});

// =============================================================================================
// Anthropic

describe('anthropic provider', () => {
  let fake: FakeAnthropicServer;
  let provider: LlmProvider;
  const makeProvider = (timeoutMs = 5000): LlmProvider =>
    createAnthropicProvider({ apiKey: 'sk-ant-test', baseURL: fake.url, defaultModel: 'claude-default', timeoutMs });

  beforeEach(async () => {
    fake = await startFakeAnthropic();
    provider = makeProvider();
  });
  afterEach(() => fake.close());

  it('returns a plain answer with usage and sends the documented request shape', async () => {
    fake.enqueue({
      kind: 'message',
      content: [{ type: 'text', text: 'Hello there.' }],
      usage: { inputTokens: 20, outputTokens: 4 },
      model: 'claude-test-2025',
    });

    // temperature is set on purpose: API version 2026-10-21 rejects it, so the adapter must not send it.
    const response = await provider.complete(ask('Hi', { temperature: 0.3 }));

    assert.deepEqual(response, {
      content: 'Hello there.',
      toolCalls: [],
      usage: { inputTokens: 20, outputTokens: 4 },
      finishReason: 'stop',
      provider: 'anthropic',
      model: 'claude-test-2025',
    });
    const [request] = fake.requests;
    assert.equal(request.path, '/v1/messages');
    assert.ok(request.headers['anthropic-version'], 'anthropic-version header sent');
    const body = bodyOf(request);
    assert.equal(body.system, 'Be brief.');
    assert.deepEqual(body.messages, [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }]);
    assert.equal(body.max_tokens, 1024, 'max_tokens is required; default 1024');
    assert.equal('temperature' in body, false);
    assert.equal('tools' in body, false);
  });

  it('passes maxTokens through and counts cached prompt tokens as input', async () => {
    fake.enqueue({
      kind: 'message',
      content: [{ type: 'text', text: 'ok' }],
      usage: { inputTokens: 10, outputTokens: 2, cacheReadInputTokens: 100, cacheCreationInputTokens: 5 },
    });
    const response = await provider.complete(ask('Hi', { maxTokens: 77 }));
    assert.equal(bodyOf(fake.requests[0]).max_tokens, 77);
    assert.deepEqual(response.usage, { inputTokens: 115, outputTokens: 2 });
  });

  it('round-trips parallel tool calls: tool_use blocks out, one user turn of tool_result blocks back', async () => {
    fake.enqueue({
      kind: 'message',
      content: [
        { type: 'text', text: 'Checking both.' },
        { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'toolu_02', name: 'get_weather', input: { city: 'Oslo' } },
      ],
      usage: { inputTokens: 50, outputTokens: 30 },
    });
    fake.enqueue({ kind: 'message', content: [{ type: 'text', text: 'Paris 21°C, Oslo 9°C.' }] });

    const first = await provider.complete(ask('Paris and Oslo?', { tools: [WEATHER_TOOL] }));
    assert.equal(first.finishReason, 'tool_calls');
    assert.equal(first.content, 'Checking both.');
    assert.deepEqual(first.toolCalls, [
      { id: 'toolu_01', name: 'get_weather', arguments: '{"city":"Paris"}' },
      { id: 'toolu_02', name: 'get_weather', arguments: '{"city":"Oslo"}' },
    ]);
    assert.deepEqual(bodyOf(fake.requests[0]).tools, [
      { name: WEATHER_TOOL.name, description: WEATHER_TOOL.description, input_schema: WEATHER_TOOL.parameters },
    ]);

    const history: LlmMessage[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Paris and Oslo?' },
      { role: 'assistant', content: first.content, toolCalls: first.toolCalls },
      { role: 'tool', toolCallId: 'toolu_01', name: 'get_weather', content: '21' },
      { role: 'tool', toolCallId: 'toolu_02', name: 'get_weather', content: '9' },
    ];
    const second = await provider.complete({ model: 'm', messages: history, tools: [WEATHER_TOOL] });

    assert.equal(second.content, 'Paris 21°C, Oslo 9°C.');
    assert.equal(fake.requests.length, 2);
    const body = bodyOf(fake.requests[1]);
    assert.equal(body.system, 'Be brief.');
    assert.deepEqual(body.messages, [
      { role: 'user', content: [{ type: 'text', text: 'Paris and Oslo?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking both.' },
          { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_02', name: 'get_weather', input: { city: 'Oslo' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_01', content: '21' },
          { type: 'tool_result', tool_use_id: 'toolu_02', content: '9' },
        ],
      },
    ]);
  });

  it('replays stored tool arguments that are not valid JSON as an empty input object', async () => {
    fake.enqueue({ kind: 'message', content: [{ type: 'text', text: 'ok' }] });
    const messages: LlmMessage[] = [
      { role: 'user', content: 'Hi' },
      {
        role: 'assistant',
        content: '',
        toolCalls: [
          { id: 'toolu_bad', name: 'get_weather', arguments: '{"city": "Par' },
          { id: 'toolu_list', name: 'get_weather', arguments: '["Paris"]' },
        ],
      },
      { role: 'tool', toolCallId: 'toolu_bad', name: 'get_weather', content: 'error: bad arguments' },
      { role: 'tool', toolCallId: 'toolu_list', name: 'get_weather', content: 'error: bad arguments' },
    ];
    await provider.complete({ model: 'm', messages, tools: [WEATHER_TOOL] });
    const wire = bodyOf(fake.requests[0]).messages as Array<{ content: unknown }>;
    assert.deepEqual(
      wire[1].content,
      [
        { type: 'tool_use', id: 'toolu_bad', name: 'get_weather', input: {} },
        { type: 'tool_use', id: 'toolu_list', name: 'get_weather', input: {} },
      ],
      'no empty text block; unparsable or non-object arguments become {}',
    );
  });

  it('streams tokens before the last event, with the same final response as non-streaming', async () => {
    const reply = {
      kind: 'message' as const,
      content: [
        { type: 'text' as const, text: 'Let me look that up.' },
        // The model's streamed JSON carries whitespace; the result must match the non-streaming JSON.stringify form.
        {
          type: 'tool_use' as const,
          id: 'toolu_9',
          name: 'get_weather',
          input: { city: 'Paris', unit: 'C' },
          rawInputJson: '{"city": "Paris", "unit": "C"}',
        },
      ],
      usage: { inputTokens: 25, outputTokens: 17 },
      chunkDelayMs: 25,
    };
    fake.enqueue(reply);
    fake.enqueue(reply);

    const plain = await provider.complete(ask('Weather?', { tools: [WEATHER_TOOL] }));
    const streamed = await streamWithProbe(provider, ask('Weather?', { tools: [WEATHER_TOOL] }), fake.stream);

    assert.ok(streamed.framesAtFirstToken >= 1, 'a token arrived');
    assert.ok(
      streamed.framesAtFirstToken < streamed.framesTotal,
      `first token seen after ${streamed.framesAtFirstToken}/${streamed.framesTotal} frames: not streamed incrementally`,
    );
    assert.equal(streamed.tokens.join(''), 'Let me look that up.');
    assert.ok(streamed.tokens.length > 1, 'text arrived in several deltas');
    assert.deepEqual(streamed.response, plain);
    assert.deepEqual(streamed.response.toolCalls, [
      { id: 'toolu_9', name: 'get_weather', arguments: '{"city":"Paris","unit":"C"}' },
    ]);
    assert.deepEqual(
      streamed.response.usage,
      { inputTokens: 25, outputTokens: 17 },
      'output tokens come from message_delta',
    );
    assert.equal(bodyOf(fake.requests[1]).stream, true);
  });

  it('returns streamed tool input cut by max_tokens raw, with finishReason length', async () => {
    fake.enqueue({
      kind: 'message',
      content: [{ type: 'tool_use', id: 'toolu_cut', name: 'get_weather', rawInputJson: '{"city": "Par' }],
      stopReason: 'max_tokens',
    });
    const response = await provider.complete(ask('Hi', { tools: [WEATHER_TOOL] }), { onToken: () => {} });
    assert.deepEqual(response.toolCalls, [{ id: 'toolu_cut', name: 'get_weather', arguments: '{"city": "Par' }]);
    assert.equal(response.finishReason, 'length');
  });

  it('classifies 429 as rate_limited with retry-after as an HTTP date', async () => {
    const retryAt = new Date(Date.now() + 30_000).toUTCString();
    fake.enqueue({
      kind: 'error',
      status: 429,
      body: anthropicErrorBody('rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'),
      headers: { 'retry-after': retryAt },
    });
    const err = await expectProviderError(provider.complete(ask('Hi')), 'rate_limited');
    assert.ok(
      err.details.retryAfterMs !== undefined && err.details.retryAfterMs > 28_000 && err.details.retryAfterMs <= 30_000,
      `retryAfterMs=${err.details.retryAfterMs}`,
    );
    assert.equal(err.details.status, 429);
    assert.equal(err.details.provider, 'anthropic');
    assert.equal(fake.requests.length, 1, 'the SDK must not retry on its own');
  });

  it('classifies 429 with retry-after in seconds', async () => {
    fake.enqueue({
      kind: 'error',
      status: 429,
      body: anthropicErrorBody('rate_limit_error', 'slow down'),
      headers: { 'retry-after': '12' },
    });
    const err = await expectProviderError(provider.complete(ask('Hi')), 'rate_limited');
    assert.equal(err.details.retryAfterMs, 12_000);
  });

  it('classifies 500 and 529 overloaded as unavailable', async () => {
    fake.enqueue({ kind: 'error', status: 500, body: anthropicErrorBody('api_error', 'Internal server error') });
    fake.enqueue({ kind: 'error', status: 529, body: anthropicErrorBody('overloaded_error', 'Overloaded') });
    const internal = await expectProviderError(provider.complete(ask('Hi')), 'unavailable');
    const overloaded = await expectProviderError(provider.complete(ask('Hi')), 'unavailable');
    assert.equal(internal.details.status, 500);
    assert.equal(overloaded.details.status, 529);
    assert.match(overloaded.message, /Overloaded/);
  });

  it('classifies an error event inside a 200 stream by its type', async () => {
    fake.enqueue({
      kind: 'sse',
      events: [
        {
          event: 'message_start',
          data: {
            type: 'message_start',
            message: {
              id: 'msg_1',
              type: 'message',
              role: 'assistant',
              model: 'm',
              content: [],
              stop_reason: null,
              stop_sequence: null,
              usage: { input_tokens: 5, output_tokens: 1 },
            },
          },
        },
        { event: 'error', data: anthropicErrorBody('overloaded_error', 'Overloaded') },
      ],
    });
    const err = await expectProviderError(provider.complete(ask('Hi'), { onToken: () => {} }), 'unavailable');
    assert.match(err.message, /overloaded_error/);
  });

  it('classifies a connection reset as network', async () => {
    fake.enqueue({ kind: 'reset' });
    await expectProviderError(provider.complete(ask('Hi')), 'network');
  });

  it('treats timeoutMs as an idle timeout while streaming: a slow but steady stream completes', async () => {
    fake.enqueue({ kind: 'message', content: [{ type: 'text', text: 'a b c d e f g h' }], chunkDelayMs: 40 });
    const response = await makeProvider(200).complete(ask('Hi'), { onToken: () => {} });
    assert.equal(response.content, 'a b c d e f g h');
  });

  it('classifies a stream that stalls mid-answer as timeout', async () => {
    fake.enqueue({ kind: 'message', content: [{ type: 'text', text: 'a b c d e f' }], stallAfterFrames: 3 });
    await expectProviderError(makeProvider(200).complete(ask('Hi'), { onToken: () => {} }), 'timeout');
  });

  it('classifies a stream that closes cleanly before message_stop as network', async () => {
    fake.enqueue({
      kind: 'sse',
      events: [
        {
          event: 'message_start',
          data: {
            type: 'message_start',
            message: {
              id: 'msg_1',
              type: 'message',
              role: 'assistant',
              model: 'm',
              content: [],
              stop_reason: null,
              stop_sequence: null,
              usage: { input_tokens: 5, output_tokens: 1 },
            },
          },
        },
        {
          event: 'content_block_start',
          data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
        },
        {
          event: 'content_block_delta',
          data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Half an ans' } },
        },
      ],
    });
    await expectProviderError(provider.complete(ask('Hi'), { onToken: () => {} }), 'network');
  });

  it('classifies a stream cut before message_stop as network', async () => {
    fake.enqueue({ kind: 'message', content: [{ type: 'text', text: 'a b c d e f' }], resetAfterFrames: 4 });
    await expectProviderError(provider.complete(ask('Hi'), { onToken: () => {} }), 'network');
  });

  it('classifies a server that never answers as timeout', async () => {
    fake.enqueue({ kind: 'hang' });
    const started = Date.now();
    await expectProviderError(makeProvider(150).complete(ask('Hi')), 'timeout');
    assert.ok(Date.now() - started < 3000, 'the timeout must fire near timeoutMs');
  });

  it('classifies 401 as auth', async () => {
    fake.enqueue({ kind: 'error', status: 401, body: anthropicErrorBody('authentication_error', 'invalid x-api-key') });
    const err = await expectProviderError(provider.complete(ask('Hi')), 'auth');
    assert.match(err.message, /invalid x-api-key/);
  });

  it('classifies "prompt is too long" as context_length', async () => {
    fake.enqueue({
      kind: 'error',
      status: 400,
      body: anthropicErrorBody('invalid_request_error', 'prompt is too long: 210000 tokens > 200000 maximum'),
    });
    await expectProviderError(provider.complete(ask('Hi')), 'context_length');
  });

  it('classifies other 400s as invalid_request (here: the fake rejecting an unmatched tool_result)', async () => {
    const messages: LlmMessage[] = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Sure.' },
      { role: 'tool', toolCallId: 'toolu_ghost', name: 'get_weather', content: '{}' },
    ];
    const err = await expectProviderError(provider.complete({ model: 'm', messages, tools: [] }), 'invalid_request');
    assert.match(err.message, /corresponding `tool_use` block/);
  });

  it('classifies a truncated JSON body as unavailable', async () => {
    fake.enqueue({ kind: 'truncated' });
    await expectProviderError(provider.complete(ask('Hi')), 'unavailable');
  });

  it('maps stop_reason refusal to finishReason refusal, streaming or not', async () => {
    const reply = {
      kind: 'message' as const,
      content: [{ type: 'text' as const, text: "I can't help with that." }],
      stopReason: 'refusal' as const,
    };
    fake.enqueue(reply);
    fake.enqueue(reply);
    const plain = await provider.complete(ask('Something bad'));
    const streamed = await provider.complete(ask('Something bad'), { onToken: () => {} });
    assert.equal(plain.finishReason, 'refusal');
    assert.equal(plain.content, "I can't help with that.");
    assert.deepEqual(streamed, plain);
  });

  it("rethrows the caller's abort as-is, not as a ProviderError", async () => {
    fake.enqueue({ kind: 'message', content: [{ type: 'text', text: 'a b c d e f' }], chunkDelayMs: 50 });
    const controller = new AbortController();
    const err = await rejectionOf(
      provider.complete(ask('Hi'), { signal: controller.signal, onToken: () => controller.abort() }),
    );
    assert.ok(!(err instanceof ProviderError), `expected the abort, got ${String(err)}`);
    assert.equal((err as Error).name, 'AbortError');
  });
});
