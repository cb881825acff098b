/**
 * The LangGraph.js peer: a prebuilt ReAct agent (`createReactAgent`) with the `memory_write` tool,
 * checkpointed in PostgreSQL by `PostgresSaver` with `durability: 'sync'` (every step's checkpoint is
 * written before the next step starts). LangGraph has no queue or worker of its own: the process that
 * invokes a graph runs it, here behind a small HTTP server. After a crash the caller invokes the thread
 * again: with `null` input LangGraph resumes from its last checkpoint.
 *
 * With approval, the tool calls `interrupt()` before writing and the graph stops there until
 * `POST /tasks/:id/resume` answers with `Command({ resume })`.
 */
import { tool } from '@langchain/core/tools';
import { Command, interrupt } from '@langchain/langgraph';
import { PostgresSaver } from '@langchain/langgraph-checkpoint-postgres';
import { createReactAgent } from '@langchain/langgraph/prebuilt';
import { ChatOpenAI } from '@langchain/openai';
import pg from 'pg';
import { z } from 'zod';
import { env, prompt, serve, TOOL_TABLE, writeTool } from './common';

async function main(): Promise<void> {
  const url = env('DATABASE_URL');
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  await pool.query(TOOL_TABLE);
  const checkpointer = PostgresSaver.fromConnString(env('CHECKPOINT_DATABASE_URL'));
  await checkpointer.setup();
  const model = new ChatOpenAI({
    model: 'loopback',
    apiKey: 'bench-loopback',
    configuration: { baseURL: env('MODEL_BASE_URL') },
    maxRetries: 3,
    timeout: 60_000,
  });
  const memoryWrite = tool(
    async ({ key }, config) => {
      const threadId = String(config.configurable?.thread_id);
      if (threadId.startsWith('approval-')) {
        const approved = interrupt({ question: `write ${key}?` }) as boolean;
        if (!approved) return 'rejected';
      }
      // LangGraph offers no idempotency key for a tool's side effect: each application is its own row.
      await writeTool(pool, { system: 'langgraph', taskId: threadId, idemKey: null, startedAtMs: Date.now() });
      return 'written';
    },
    {
      name: 'memory_write',
      description: 'Write to memory.',
      schema: z.object({ key: z.string(), value: z.unknown() }),
    },
  );
  const agent = createReactAgent({ llm: model, tools: [memoryWrite], checkpointer });
  const opts = (threadId: string) => ({ configurable: { thread_id: threadId }, durability: 'sync' as const });

  serve(async (method, parts, body) => {
    if (method === 'GET' && parts[0] === 'health') return { status: 200, body: { ok: true } };
    const threadId = parts[1];
    if (method === 'POST' && parts[0] === 'tasks' && parts.length === 2) {
      // Run or resume the thread to its end (or its interrupt).
      const state = await agent.getState(opts(threadId));
      const started = state.values && Array.isArray(state.values.messages) && state.values.messages.length > 0;
      if (started && state.next.length === 0) return { status: 200, body: { status: 'done' } };
      if (started && state.tasks.some((t) => t.interrupts.length > 0))
        return { status: 200, body: { status: 'waiting' } };
      await agent.invoke(started ? null : { messages: [{ role: 'user', content: prompt(threadId) }] }, opts(threadId));
      const after = await agent.getState(opts(threadId));
      return { status: 200, body: { status: after.next.length === 0 ? 'done' : 'waiting' } };
    }
    if (method === 'POST' && parts[0] === 'tasks' && parts[2] === 'resume') {
      await agent.invoke(new Command({ resume: body.approve === true }), opts(threadId));
      return { status: 200, body: { status: 'done' } };
    }
    return { status: 404, body: { error: 'no route' } };
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
