/**
 * Traces in a real Jaeger (v2, built and cached by scripts/jaeger.ts): a task with a model call, a tool call
 * and an approval is one trace with the GenAI spans and their parent/child links, read back through
 * Jaeger's query API; a worker killed mid-task leaves one trace, not two.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { agentWorkflowId } from '../contract/definitions';
import { findJaeger, startJaeger, type RunningJaeger } from '../scripts/jaeger';
import { killHard, spawnWorker, startApi, testConfig, waitFor, type TestStack } from './helpers/stack';

interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: string; spanID: string }[];
  tags: { key: string; value: unknown }[];
  processID: string;
}
interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string }>;
}

const SERVICE = 'agent-orchestrator';
const tag = (span: JaegerSpan, key: string) => span.tags.find((t) => t.key === key)?.value;

/** A copilot agent's script: write to memory (needs approval), then answer. */
const script = (key: string) => [
  { call: 'memory_write', args: { key, op: 'set', value: 1 } },
  { answer: `stored ${key}` },
];

describe('traces', { timeout: 15 * 60_000 }, () => {
  let jaeger: RunningJaeger;
  let stack: TestStack;
  let workerEnv: Record<string, string>;
  const workers: ReturnType<typeof spawnWorker>[] = [];

  before(async () => {
    jaeger = await startJaeger({ binary: await findJaeger((m) => console.error(m)) });
    const otel = {
      OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpUrl,
      OTEL_SERVICE_NAME: SERVICE,
      // Export at once: a worker killed mid-task must not take unexported spans with it.
      OTEL_BSP_SCHEDULE_DELAY: '100',
    };
    Object.assign(process.env, { OTEL_BSP_SCHEDULE_DELAY: '100' });
    const config = testConfig({ ...otel, TRACES_UI_URL: `${jaeger.uiUrl}/trace/{traceId}` });
    stack = await startApi(config);
    // Workers bundle the workflows themselves, with the tracing interceptor module.
    workerEnv = { ...otel, WORKFLOW_BUNDLE_PATH: '', TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE };
  });
  after(async () => {
    await Promise.all(workers.map(killHard));
    await stack?.stop();
    await jaeger?.stop();
  });

  const startWorker = async () => {
    const worker = spawnWorker(stack.config, workerEnv);
    workers.push(worker);
    await worker.ready;
    return worker;
  };

  const pendingApproval = (taskId: string) =>
    waitFor(
      async () => {
        const res = await stack.api.get(`/api/v1/approvals?status=pending`);
        return res.body.approvals.find((a: { taskId: string }) => a.taskId === taskId);
      },
      'an approval request',
      60_000,
    );

  /** The traces Jaeger holds for one task, found by the conversation id on its spans. */
  const tracesOfTask = async (taskId: string): Promise<JaegerTrace[]> => {
    const tags = encodeURIComponent(JSON.stringify({ 'gen_ai.conversation.id': taskId }));
    const res = await fetch(`${jaeger.uiUrl}/api/traces?service=${SERVICE}-worker&tags=${tags}&limit=20&lookback=1h`);
    assert.equal(res.status, 200);
    return ((await res.json()) as { data: JaegerTrace[] }).data;
  };

  /** Waits until the trace holds every span named in `names`. */
  const traceWith = async (traceId: string, names: string[]) => {
    let seen: string[] = [];
    try {
      return await waitFor(
        async () => {
          const res = await fetch(`${jaeger.uiUrl}/api/traces/${traceId}`);
          if (!res.ok) return undefined;
          const found = ((await res.json()) as { data: JaegerTrace[] }).data[0];
          seen = found?.spans.map((s) => s.operationName) ?? [];
          return names.every((n) => seen.includes(n)) ? found : undefined;
        },
        `spans ${names.join(', ')} in trace ${traceId}`,
        30_000,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; the trace holds ${seen.join(', ') || 'nothing'}`);
    }
  };

  it('a task with a model call, a tool call and an approval is one trace from the API request to the tool', async () => {
    const worker = await startWorker();
    try {
      const agent = await stack.api.createAgent({ name: 'Tracer', objective: 'Trace', autonomy: 'copilot' });
      const created = await stack.api.createTask({
        agentId: agent.id,
        title: 'traced',
        input: { script: script('t1') },
      });
      const approval = await pendingApproval(created.id);
      // While it waits, the agent's Web UI details link to the task's trace (the one its row names).
      const { traceId } = (await stack.api.get(`/api/v1/tasks/${created.id}`)).body;
      const metadata = await stack.client.workflow
        .getHandle(agentWorkflowId(agent.id))
        .query<{ currentDetails: string }>('__temporal_workflow_metadata');
      assert.ok(
        metadata.currentDetails.endsWith(` · [trace](${jaeger.uiUrl}/trace/${traceId})`),
        metadata.currentDetails,
      );
      assert.equal((await stack.api.post(`/api/v1/approvals/${approval.id}/approve`, {})).status, 200);
      const done = await stack.api.waitForTask(created.id, 60_000);
      assert.equal(done.status, 'completed');
      assert.match(done.traceId, /^[0-9a-f]{32}$/, 'GET /api/v1/tasks/:id returns the trace id');
      assert.equal(done.traceUrl, `${jaeger.uiUrl}/trace/${done.traceId}`, 'and where to open the trace');

      const t = await traceWith(done.traceId, [
        'POST /api/v1/tasks',
        'invoke_agent Tracer',
        'chat offline-v1',
        'execute_tool memory_write',
        'wait approval',
      ]);
      const byName = (name: string) => t.spans.filter((s) => s.operationName === name);
      const byId = new Map(t.spans.map((s) => [s.spanID, s]));
      const parentOf = (s: JaegerSpan) => byId.get(s.references.find((r) => r.refType === 'CHILD_OF')?.spanID ?? '');
      const ancestors = (s: JaegerSpan) => {
        const names: string[] = [];
        for (let p = parentOf(s); p; p = parentOf(p)) names.push(p.operationName);
        return names;
      };

      // One task, one agent span, under the request that submitted it.
      const [invoke] = byName('invoke_agent Tracer');
      assert.equal(byName('invoke_agent Tracer').length, 1);
      assert.ok(
        ancestors(invoke!).includes('POST /api/v1/tasks'),
        `invoke_agent under the request: ${ancestors(invoke!)}`,
      );
      assert.equal(tag(invoke!, 'gen_ai.operation.name'), 'invoke_agent');
      assert.equal(tag(invoke!, 'gen_ai.agent.id'), agent.id);

      // Model calls: two (tool call, then the answer), each inside the task's activity spans.
      // The task's own model calls (a priority-scoring call, if any, sits under the submit update instead).
      const chats = byName('chat offline-v1').filter((c) => ancestors(c).includes('RunActivity:callModel'));
      assert.ok(chats.length >= 2, `a model call before the tool and one after it (${chats.length})`);
      for (const chat of chats) {
        assert.equal(tag(chat, 'gen_ai.operation.name'), 'chat');
        assert.equal(tag(chat, 'gen_ai.provider.name'), 'offline');
        assert.equal(tag(chat, 'gen_ai.request.model'), 'offline-v1');
        assert.equal(tag(chat, 'gen_ai.response.model'), 'offline-v1');
        assert.equal(typeof tag(chat, 'gen_ai.usage.input_tokens'), 'number');
        assert.equal(typeof tag(chat, 'gen_ai.usage.output_tokens'), 'number');
        assert.equal(tag(chat, 'gen_ai.input.messages'), undefined, 'prompts are not recorded by default');
        const chain = ancestors(chat);
        assert.ok(chain.includes('RunActivity:callModel'), `chat under its activity: ${chain}`);
        assert.ok(chain.includes('invoke_agent Tracer'), `chat under invoke_agent: ${chain}`);
      }
      const reasons = chats.map((c) => String(tag(c, 'gen_ai.response.finish_reasons')));
      assert.ok(reasons.includes('["tool_calls"]') && reasons.includes('["stop"]'), `finish reasons: ${reasons}`);

      const [tool] = byName('execute_tool memory_write');
      assert.equal(tag(tool!, 'gen_ai.tool.name'), 'memory_write');
      assert.equal(typeof tag(tool!, 'gen_ai.tool.call.id'), 'string');
      assert.ok(ancestors(tool!).includes('invoke_agent Tracer'));

      const [wait] = byName('wait approval');
      assert.equal(parentOf(wait!)?.operationName, 'invoke_agent Tracer');

      // The API and the worker both report into the one trace.
      const services = new Set(Object.values(t.processes).map((p) => p.serviceName));
      assert.deepEqual([...services].sort(), [`${SERVICE}-api`, `${SERVICE}-worker`]);
    } finally {
      await killHard(worker);
    }
  });

  /**
   * A copilot agent's task waits on its approval while `first` runs it; `first` is killed, a traced worker
   * takes over, the request is approved through the API and the task finishes. `beforeKill` runs just before
   * `first` is killed (a SIGKILL loses the spans a worker has not sent yet); `check` looks at the finished task
   * while the second worker still runs, for the same reason.
   */
  const approvedAfterTakeover = async (
    first: ReturnType<typeof spawnWorker>,
    name: string,
    key: string,
    check: (done: { id: string; traceId: string }) => Promise<void> = async () => {},
    beforeKill: (taskId: string) => Promise<void> = async () => {},
  ) => {
    const agent = await stack.api.createAgent({ name, objective: name, autonomy: 'copilot' });
    const created = await stack.api.createTask({ agentId: agent.id, title: name, input: { script: script(key) } });
    const approval = await pendingApproval(created.id);
    await beforeKill(created.id);
    await killHard(first);
    const second = await startWorker();
    try {
      const decided = await stack.api.post(`/api/v1/approvals/${approval.id}/approve`, {});
      assert.equal(decided.status, 200, JSON.stringify(decided.body));
      const done = await stack.api.waitForTask(created.id, 90_000);
      assert.equal(done.status, 'completed', JSON.stringify(done));
      assert.deepEqual(done.output, { answer: `[offline] stored ${key}` });
      await check(done);
    } finally {
      await killHard(second);
    }
  };

  it('a worker killed mid-task leaves one trace, not two', async () => {
    // The first worker's model call is in Jaeger before it is killed, so the trace must hold both workers' spans.
    const firstCallExported = async (taskId: string) => {
      const { traceId } = (await stack.api.get(`/api/v1/tasks/${taskId}`)).body as { traceId: string };
      await traceWith(traceId, ['chat offline-v1']);
    };
    await approvedAfterTakeover(
      await startWorker(),
      'Survivor',
      't2',
      async (done) => {
        const t = await traceWith(done.traceId, [
          'invoke_agent Survivor',
          'wait approval',
          'execute_tool memory_write',
        ]);
        // Both workers' spans are in it: the first's model call, the second's final one (and its tool call).
        assert.ok(t.spans.filter((s) => s.operationName === 'chat offline-v1').length >= 2);
        assert.equal(t.spans.filter((s) => s.operationName === 'invoke_agent Survivor').length, 1);
        assert.equal(t.spans.filter((s) => s.operationName === 'wait approval').length, 1);
        const traces = await tracesOfTask(done.id);
        assert.deepEqual(
          traces.map((x) => x.traceID),
          [done.traceId],
          'every span of the task is in the one trace',
        );
      },
      firstCallExported,
    );
  });

  it('tracing switched on for an agent waiting on an approval keeps the approval it waits on', async () => {
    // The first worker has no tracing: none of its draws are span ids. The traced worker replays the same
    // history with the tracing interceptors drawing span ids as it goes; the task must wait on the same id.
    const untraced = spawnWorker(stack.config, { WORKFLOW_BUNDLE_PATH: '' });
    workers.push(untraced);
    await untraced.ready;
    await approvedAfterTakeover(untraced, 'Switcher', 't3');
  });
});
