/**
 * Chat first token: `POST /api/v1/chat` (streaming) sent → the first `token` event read by the client,
 * minus the provider's own first-token time. The provider is a loopback process speaking the OpenAI wire
 * format with a fixed first-token delay, so what remains is the orchestrator's share: the API, the chat
 * workflow's update-with-start, the worker's activity, the provider adapter, Postgres NOTIFY and SSE.
 * Runs its own worker (and API) on its own task queue, configured for that provider.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Bench } from '../context';
import { childCrashed, log, pool, spawnNode, summarize, type Summary } from '../lib';
import { startApi } from './api';

export interface ChatLevel {
  concurrency: number;
  samples: number;
  /** Client-side time to the first token event. */
  firstTokenMs: Summary;
  /** firstTokenMs minus the provider's fixed first-token delay. */
  overheadMs: Summary;
  failed: number;
}

export interface ChatFirstToken {
  providerFirstTokenMs: number;
  levels: ChatLevel[];
}

export async function chatFirstToken(
  b: Bench,
  opts: { queue: string; providerFirstTokenMs: number; samplesPerChat: { 1: number; 10: number } },
  waitForPollers: (queue: string) => Promise<void>,
): Promise<ChatFirstToken> {
  const provider = spawnNode('chat provider', 'bench/loopback-provider.ts', b.env, [String(opts.providerFirstTokenMs)]);
  b.named.set(provider.pid, 'chat provider');
  const stops: (() => Promise<void>)[] = [() => provider.stop()];
  try {
    const port = await Promise.race([listeningPort(provider.output), childCrashed]);
    const providerEnv = {
      TEMPORAL_TASK_QUEUE: opts.queue,
      AI_PROVIDER: 'openai',
      OPENAI_API_KEY: 'bench-loopback',
      OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1`,
    };
    const worker = spawnNode('chat worker', 'workers/main.ts', { ...b.env, ...providerEnv });
    b.named.set(worker.pid, 'chat worker');
    stops.push(() => worker.stop());
    await Promise.race([waitForPollers(opts.queue), childCrashed]);
    const api = await startApi(b, providerEnv, 'chat api');
    stops.push(() => api.stop());

    const agentIds: string[] = [];
    for (let i = 0; i < 10; i++) {
      const created = await api.request('POST', '/api/v1/agents', { name: `chat-${i}`, objective: 'benchmark chat' });
      if (created.status !== 201)
        throw new Error(`POST /agents answered ${created.status}: ${JSON.stringify(created.body)}`);
      agentIds.push((created.body as { id: string }).id);
    }
    // One turn per agent first, so the chat workflow's code and the provider's connection are warm.
    await pool(agentIds, 10, async (agentId) => void (await chatOnce(api.base, api.apiKey, agentId)));

    const levels: ChatLevel[] = [];
    for (const concurrency of [1, 10] as const) {
      const firstToken: number[] = [];
      let failed = 0;
      await pool(agentIds.slice(0, concurrency), concurrency, async (agentId) => {
        for (let i = 0; i < opts.samplesPerChat[concurrency]; i++) {
          const ms = await chatOnce(api.base, api.apiKey, agentId);
          if (ms === undefined) failed++;
          else firstToken.push(ms);
        }
      });
      const firstTokenMs = summarize(firstToken);
      const overheadMs = summarize(firstToken.map((ms) => ms - opts.providerFirstTokenMs));
      log(
        `chat: ${concurrency} concurrent: overhead p50 ${overheadMs.p50} ms, p99 ${overheadMs.p99} ms (${failed} failed)`,
      );
      levels.push({ concurrency, samples: firstToken.length, firstTokenMs, overheadMs, failed });
    }
    return { providerFirstTokenMs: opts.providerFirstTokenMs, levels };
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

/** One streamed chat turn; resolves with the time to its first token event, undefined when none came. */
async function chatOnce(base: string, apiKey: string, agentId: string): Promise<number | undefined> {
  const sentAt = performance.now();
  const res = await fetch(`${base}/api/v1/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ agentId, message: `hello ${randomUUID().slice(0, 8)}` }),
  });
  if (res.status !== 200 || !res.body) {
    log(`chat: POST /chat answered ${res.status}: ${await res.text()}`);
    return undefined;
  }
  let firstToken: number | undefined;
  let buffered = '';
  let ended: string | undefined;
  const decoder = new TextDecoder();
  // Read to the end of the stream (message or error), so every turn finishes before the next starts.
  for await (const bytes of res.body) {
    buffered += decoder.decode(bytes as Uint8Array, { stream: true });
    if (firstToken === undefined && buffered.includes('event: token\n')) firstToken = performance.now() - sentAt;
    const last = /event: (message|error)\n/.exec(buffered);
    if (last) ended = last[1];
  }
  if (ended !== 'message') log(`chat: a turn ended with ${ended ?? 'no final event'}: ${buffered.slice(-300)}`);
  return ended === 'message' ? firstToken : undefined;
}

async function listeningPort(output: () => string): Promise<number> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const line = output().split('\n')[0];
    if (line.endsWith('}')) return (JSON.parse(line) as { port: number }).port;
    await sleep(50);
  }
  throw new Error('the loopback provider did not listen within 60 s');
}
