/**
 * The DBOS peer: the agent task as a DBOS workflow in PostgreSQL, each model call and the tool a step
 * (checkpointed when it completes; after a crash `DBOS.launch()` recovers the pending workflows and replays
 * completed steps from their checkpoints). The tool is keyed by the workflow id, DBOS's own idempotency key.
 * The model is called with the OpenAI SDK. Requests arrive over HTTP and start the workflow with the task id
 * as its workflow id, so a request sent again after a crash attaches to the same workflow.
 *
 * With approval, the workflow waits in `DBOS.recv('decision')` (durable, with a timeout) between the first
 * model call and the tool.
 */
import { DBOS } from '@dbos-inc/dbos-sdk';
import OpenAI from 'openai';
import pg from 'pg';
import { env, prompt, serve, TOOL_TABLE, writeTool } from './common';

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;

const TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'memory_write',
      description: 'Write to memory.',
      parameters: { type: 'object', properties: { key: { type: 'string' }, value: {} }, required: ['key'] },
    },
  },
];

async function main(): Promise<void> {
  const url = env('DATABASE_URL');
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  await pool.query(TOOL_TABLE);
  const openai = new OpenAI({
    apiKey: 'bench-loopback',
    baseURL: env('MODEL_BASE_URL'),
    maxRetries: 0,
    timeout: 60_000,
  });

  const callModel = DBOS.registerStep(
    async (messages: Message[]) => {
      const res = await openai.chat.completions.create({ model: 'loopback', messages, tools: TOOLS });
      return res.choices[0].message;
    },
    { name: 'callModel', retriesAllowed: true, maxAttempts: 5, intervalSeconds: 1 },
  );
  const memoryWrite = DBOS.registerStep(
    async (taskId: string) => {
      await writeTool(pool, { system: 'dbos', taskId, idemKey: `dbos:${DBOS.workflowID}`, startedAtMs: Date.now() });
      return 'written';
    },
    { name: 'memoryWrite', retriesAllowed: true, maxAttempts: 5, intervalSeconds: 1 },
  );
  const agentTask = DBOS.registerWorkflow(
    async (taskId: string, approval: boolean) => {
      const messages: Message[] = [{ role: 'user', content: prompt(taskId) }];
      const first = await callModel(messages);
      messages.push(first);
      for (const call of first.tool_calls ?? []) {
        let result = 'rejected';
        const approved = approval ? await DBOS.recv<boolean>('decision', 3600) : true;
        if (approved) result = await memoryWrite(taskId);
        messages.push({ role: 'tool', tool_call_id: call.id, content: result });
      }
      const second = await callModel(messages);
      return second.content ?? '';
    },
    { name: 'agentTask' },
  );

  DBOS.setConfig({ name: 'bench-peers', systemDatabaseUrl: env('DBOS_SYSTEM_DATABASE_URL') });
  await DBOS.launch();

  serve(async (method, parts, body) => {
    if (method === 'GET' && parts[0] === 'health') return { status: 200, body: { ok: true } };
    const taskId = parts[1];
    if (method === 'POST' && parts[0] === 'tasks' && parts.length === 2) {
      const handle = await DBOS.startWorkflow(agentTask, { workflowID: taskId })(taskId, body.approval === true);
      if (body.wait === false) return { status: 202, body: { status: 'started' } };
      await handle.getResult();
      return { status: 200, body: { status: 'done' } };
    }
    if (method === 'POST' && parts[0] === 'tasks' && parts[2] === 'resume') {
      await DBOS.send(taskId, body.approve === true, 'decision');
      return { status: 200, body: { status: 'sent' } };
    }
    return { status: 404, body: { error: 'no route' } };
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
