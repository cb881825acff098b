import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { createProviderRegistry } from '../activities/llm';
import { ProviderCircuits } from '../activities/llm/circuits';
import { createToolRegistry } from '../activities/tools';
import { McpToolSource } from '../activities/tools/mcp';
import { agentSettings, type Config } from '../lib/config';
import { crewWorkflowId, metaWorkflowId } from '../contract/definitions';
import { silentLogger, startApi, startWorker, testConfig, waitFor, type TestStack } from './helpers/stack';

/** The worker's activities, bound to the test's database and Temporal client, to call one directly. */
function activitiesFor(stack: TestStack, config: Config) {
  return createActivities({
    db: stack.db,
    config,
    logger: silentLogger,
    providers: createProviderRegistry(config),
    circuits: new ProviderCircuits({ threshold: 5, recoveryMs: 30_000, onStateChange: () => {} }),
    mcp: new McpToolSource(),
    tools: createToolRegistry({ agents: stack.gateway }),
    gateway: stack.gateway,
  });
}

/** Runs an activity in a mock activity context (with the test's client when given), typed by the activity. */
function inActivityContext(taskQueue: string, client?: TestStack['client']) {
  const env = new MockActivityEnvironment({ taskQueue }, client ? { client } : {});
  return <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
    env.run(fn, ...args) as Promise<R>;
}

describe('meta supervisor', () => {
  describe('when META_AGENT_ENABLED is off (the default)', () => {
    let stack: TestStack;
    before(async () => {
      stack = await startApi(testConfig());
    });
    after(async () => {
      await stack?.stop();
    });

    it('answers 404 saying how to enable it', async () => {
      assert.equal(stack.config.META_AGENT_ENABLED, false);
      const runs = async () => (await stack.db.query('SELECT count(*)::int AS n FROM meta_runs')).rows[0].n as number;
      const before = await runs();
      for (const res of [
        await stack.api.post('/api/v1/meta', { objective: 'Plan a launch' }),
        await stack.api.get('/api/v1/meta'),
      ]) {
        assert.equal(res.status, 404);
        assert.match(res.body.error.message, /META_AGENT_ENABLED=true/);
      }
      assert.equal(await runs(), before, 'no run was recorded');
    });
  });

  describe('when enabled', () => {
    let stack: TestStack;
    let worker: { stop(): Promise<void> };
    before(async () => {
      const config = testConfig({ META_AGENT_ENABLED: 'true' });
      stack = await startApi(config);
      worker = await startWorker(config);
    });
    after(async () => {
      await worker?.stop();
      await stack?.stop();
    });

    const finishedRun = (id: string) =>
      waitFor(
        async () => {
          const res = await stack.api.get(`/api/v1/meta/${id}`);
          return ['completed', 'failed'].includes(res.body?.status) ? res.body : undefined;
        },
        `meta run ${id} to finish`,
        120_000,
      );

    it('validates the body', async () => {
      const tooMany = await stack.api.post('/api/v1/meta', { objective: 'x', maxAgents: 6 });
      assert.equal(tooMany.status, 400);
      const empty = await stack.api.post('/api/v1/meta', { objective: '  ' });
      assert.equal(empty.status, 400);
      const missing = await stack.api.get('/api/v1/meta/00000000-0000-4000-8000-000000000000');
      assert.equal(missing.status, 404);
    });

    it('designs a team, creates its agents, runs the planned DAG as a crew child and combines the answers', async () => {
      const objective = 'Launch a community newsletter about urban gardening';
      const created = await stack.api.post('/api/v1/meta', { objective, name: 'Newsletter' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id: string = created.body.id;
      assert.equal(created.body.maxAgents, 5);
      assert.ok(['planning', 'creating_team', 'running'].includes(created.body.status), created.body.status);

      const run = await waitFor(
        async () => {
          const res = await stack.api.get(`/api/v1/meta/${id}`);
          return ['completed', 'failed'].includes(res.body?.status) ? res.body : undefined;
        },
        `meta run ${id} to finish`,
        90_000,
      );
      assert.equal(run.status, 'completed', JSON.stringify(run));
      assert.equal(run.error, null);
      // The design call was admitted like any step: a reservation of the organisation's budget.
      const ledger = await stack.db.query(`SELECT org_id, purpose FROM token_ledger WHERE task_id = $1`, [
        `meta-${id}`,
      ]);
      assert.deepEqual(ledger.rows, [{ org_id: stack.config.DEFAULT_ORG_ID, purpose: 'meta' }]);

      // The team: at most 5 agents, each a real agent row with the objective it was designed for.
      assert.ok(run.team.length >= 1 && run.team.length <= 5, `team of ${run.team.length}`);
      const agentIds: string[] = run.team.map((m: { agentId: string }) => m.agentId);
      assert.equal(new Set(agentIds).size, run.team.length);
      assert.equal(run.keepAgents, false);
      assert.equal(run.requestedBy, null);
      for (const member of run.team) {
        const agent = await stack.api.get(`/api/v1/agents/${member.agentId}`);
        assert.equal(agent.status, 200);
        // Not kept (keepAgents false): the run archived its team before it was seen completed.
        assert.equal(agent.body.status, 'ARCHIVED');
        assert.equal(member.agentStatus, 'ARCHIVED');
        assert.equal(agent.body.objective, member.objective);
        assert.deepEqual(agent.body.capabilities, member.capabilities);
        assert.ok(member.objective.includes(objective), member.objective);
        assert.ok(member.role);
      }

      // The crew ran as a child of the meta workflow, with the plan it was given (no planner sub-task).
      assert.ok(run.crewId);
      assert.deepEqual(run.crew, { id: run.crewId, status: 'completed' });
      const crewDescription = await stack.client.workflow.getHandle(crewWorkflowId(run.crewId)).describe();
      assert.equal(crewDescription.parentExecution?.workflowId, metaWorkflowId(id));
      const crew = await stack.api.get(`/api/v1/crews/${run.crewId}`);
      assert.equal(crew.status, 200);
      assert.equal(crew.body.process, 'hierarchical');
      assert.deepEqual(crew.body.members.map((m: { agentId: string }) => m.agentId).sort(), [...agentIds].sort());

      // Every planned sub-task ran on a created agent with the capability it needed, after its dependencies.
      const plan: { id: string; capabilities: string[]; dependsOn: string[] }[] = run.plan;
      assert.ok(
        plan.some((n) => n.dependsOn.length > 0),
        'the plan has dependencies',
      );
      assert.deepEqual(
        run.result.subTasks.map((s: { key: string }) => s.key),
        plan.map((n) => n.id),
      );
      const { rows: tasks } = await stack.db.query(
        'SELECT id, agent_id, status, output, started_at, completed_at FROM tasks WHERE crew_id = $1',
        [run.crewId],
      );
      assert.equal(tasks.length, plan.length, 'one task per sub-task, none for planning');
      const taskOf = new Map<string, (typeof tasks)[number]>();
      for (const sub of run.result.subTasks) {
        assert.equal(sub.status, 'completed', JSON.stringify(sub));
        assert.equal(sub.taskIds.length, 1);
        const task = tasks.find((t) => t.id === sub.taskIds[0]);
        assert.ok(task, `task row of ${sub.key}`);
        assert.equal(task.status, 'completed');
        assert.equal(task.agent_id, sub.agentId);
        const member = run.team.find((m: { agentId: string }) => m.agentId === sub.agentId);
        const node = plan.find((n) => n.id === sub.key)!;
        assert.ok(
          node.capabilities.every((c) => member.capabilities.includes(c)),
          `${sub.key} ran on a capable member`,
        );
        taskOf.set(sub.key, task);
      }
      for (const node of plan) {
        for (const dep of node.dependsOn) {
          const before = taskOf.get(dep)!;
          const afterTask = taskOf.get(node.id)!;
          assert.ok(before.completed_at <= afterTask.started_at, `${dep} finished before ${node.id} started`);
        }
      }

      // The result combines every sub-task's answer.
      for (const task of tasks)
        assert.ok(run.result.combined.includes(task.output.answer), 'the combined result holds each answer');

      const list = await stack.api.get('/api/v1/meta');
      assert.equal(list.status, 200);
      assert.ok(list.body.runs.some((r: { id: string; status: string }) => r.id === id && r.status === 'completed'));

      // Both histories replay with the current workflow code.
      const workflowIds = [metaWorkflowId(id), crewWorkflowId(run.crewId)];
      const histories = await Promise.all(
        workflowIds.map(async (workflowId) => ({
          workflowId,
          history: await stack.client.workflow.getHandle(workflowId).fetchHistory(),
        })),
      );
      const failures: string[] = [];
      for await (const result of Worker.runReplayHistories(
        { workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE_PATH! } },
        histories,
      )) {
        if (result.error) failures.push(`${result.workflowId}: ${result.error.message.split('\n')[0]}`);
      }
      assert.deepEqual(failures, []);
    });

    it('keepAgents keeps the team after the run', async () => {
      const created = await stack.api.post('/api/v1/meta', {
        objective: 'Sort the seed catalogue',
        maxAgents: 1,
        keepAgents: true,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.keepAgents, true);
      const run = await finishedRun(created.body.id);
      assert.equal(run.status, 'completed', JSON.stringify(run));
      assert.deepEqual(
        run.team.map((m: { agentStatus: string }) => m.agentStatus),
        ['IDLE'],
      );
      await stack.api.post(`/api/v1/agents/${run.team[0].agentId}/archive`);
    });

    it('an agent starts a meta run with meta_orchestrate, waits for it with await_response and gets the combined result', async () => {
      const lead = await stack.api.createAgent({
        name: 'Lead',
        objective: 'Delegate big objectives',
        autonomy: 'autopilot',
        allowedTools: ['memory_read', 'memory_write', 'meta_orchestrate', 'await_response'],
        tokenBudgetPerMinute: 50_000,
      });
      const task = await stack.api.createTask({
        agentId: lead.id,
        title: 'Plan the garden',
        input: {
          script: [
            { call: 'meta_orchestrate', args: { objective: 'Plan a small herb garden', maxAgents: 2 } },
            { call: 'await_response', args: { timeoutSeconds: 120 } },
            { answer: 'The team planned it.' },
          ],
        },
      });
      const done = await stack.api.waitForTask(task.id, 120_000);
      assert.equal(done.status, 'completed', JSON.stringify(done));
      const calls = done.reasoningTrace.filter((d: { decisionType: string }) => d.decisionType === 'tool_call');
      assert.equal(calls.length, 2, JSON.stringify(done.reasoningTrace));
      const started = calls[0].result;
      assert.equal(started.status, 'planning');
      assert.equal(started.messageId, started.metaId);

      // The run names who asked; its team never has more than the lead, and is archived at the end.
      const run = await finishedRun(started.metaId);
      assert.equal(run.status, 'completed', JSON.stringify(run));
      assert.deepEqual(run.requestedBy, { agentId: lead.id, taskId: task.id });
      assert.equal(run.team.length, 2);
      // The team's goals sit one level below the lead's task: the delegation fuse counts them.
      const { rows: crewTasks } = await stack.db.query(
        'SELECT delegation_depth, parent_task_id FROM tasks WHERE crew_id = $1',
        [run.crewId],
      );
      assert.ok(crewTasks.length > 0);
      for (const row of crewTasks) assert.deepEqual(row, { delegation_depth: 1, parent_task_id: task.id });
      for (const member of run.team) {
        const agent = (await stack.api.get(`/api/v1/agents/${member.agentId}`)).body;
        assert.equal(agent.status, 'ARCHIVED');
        assert.deepEqual(agent.allowedTools, ['memory_read', 'memory_write'], 'only default tools the lead has');
        assert.equal(agent.tokenBudgetPerMinute, 50_000);
        assert.equal(agent.autonomy, 'autopilot');
      }

      // await_response answered the combined result, which reached the lead as a response from the orchestrator.
      const awaited = calls[1].result;
      assert.equal(awaited.messageId, started.metaId);
      assert.equal(awaited.response.fromAgentId, null);
      assert.equal(awaited.response.content, run.result.combined);
      const inbox = await stack.api.get(`/api/v1/agents/${lead.id}/messages?direction=in`);
      assert.equal(inbox.status, 200);
      const response = inbox.body.messages.find((m: { replyTo: string }) => m.replyTo === started.metaId);
      assert.equal(response?.type, 'response');
      assert.equal(response.fromAgentId, null);
    });

    it('meta_orchestrate is refused past the delegation fuse, past MAX_AGENTS, and when disabled; nothing starts', async () => {
      const lead = await stack.api.createAgent({
        name: 'Fused',
        objective: 'Try to delegate',
        allowedTools: ['meta_orchestrate'],
      });
      const task = await stack.api.createTask({ agentId: lead.id, title: 'a task to hang decisions on' });
      await stack.api.waitForTask(task.id);
      const runs = async () => (await stack.db.query('SELECT count(*)::int AS n FROM meta_runs')).rows[0].n as number;
      const before = await runs();
      const call = inActivityContext(stack.config.TEMPORAL_TASK_QUEUE, stack.client);
      const attempt = (config: Config, delegationDepth: number, key: string) =>
        call(activitiesFor(stack, config).runTool, {
          taskId: task.id,
          agentId: lead.id,
          orgId: stack.config.DEFAULT_ORG_ID,
          step: 90,
          index: Number(key),
          call: { id: `call_${key}`, name: 'meta_orchestrate', arguments: '{"objective":"Everything","maxAgents":5}' },
          allowedTools: ['meta_orchestrate'],
          idempotencyKey: `fuse-test-${task.id}-${key}`,
          delegationDepth,
          maxDelegationDepth: 2,
        });
      const deep = await attempt(stack.config, 2, '0');
      assert.equal(deep.isError, true);
      assert.match(deep.content, /depth 3 exceeds the fuse of 2/);
      const active = (
        await stack.db.query(`SELECT count(*)::int AS n FROM agents WHERE org_id = $1 AND status <> 'ARCHIVED'`, [
          stack.config.DEFAULT_ORG_ID,
        ])
      ).rows[0].n as number;
      const crowded = await attempt({ ...stack.config, MAX_AGENTS: active + 4 }, 0, '1');
      assert.equal(crowded.isError, true);
      assert.match(crowded.content, /a team of 5 would pass MAX_AGENTS/);
      const disabled = await attempt({ ...stack.config, META_AGENT_ENABLED: false }, 0, '2');
      assert.equal(disabled.isError, true);
      assert.match(disabled.content, /META_AGENT_ENABLED=false/);
      assert.equal(await runs(), before, 'no meta run was recorded');
    });

    it('a team design with fewer agents allowed stays within maxAgents', async () => {
      const activities = activitiesFor(stack, stack.config);
      const call = inActivityContext(stack.config.TEMPORAL_TASK_QUEUE);
      const design = await call(activities.designMetaTeam, {
        metaId: 'ad0a7c2e-0000-4000-8000-000000000001',
        objective: 'Audit the build',
        maxAgents: 2,
      });
      assert.equal(design.team.length, 2);
      const capabilities = new Set(design.team.flatMap((m) => m.capabilities));
      for (const node of design.plan) assert.ok(node.capabilities.every((c) => capabilities.has(c)));
    });

    it('creating the team again (a retried activity) creates no agent twice; MAX_AGENTS is respected', async () => {
      const activities = activitiesFor(stack, stack.config);
      const call = inActivityContext(stack.config.TEMPORAL_TASK_QUEUE, stack.client);
      const metaId = 'ad0a7c2e-0000-4000-8000-000000000002';
      const design = await call(activities.designMetaTeam, { metaId, objective: 'Write release notes', maxAgents: 3 });
      const input = {
        metaId,
        orgId: stack.config.DEFAULT_ORG_ID,
        name: 'Retried',
        objective: 'Write release notes',
        team: design.team,
        settings: agentSettings(stack.config),
      };
      // What MAX_AGENTS counts: the organisation's agents that are not archived.
      const count = async () =>
        (
          await stack.db.query(`SELECT count(*)::int AS n FROM agents WHERE org_id = $1 AND status <> 'ARCHIVED'`, [
            input.orgId,
          ])
        ).rows[0].n as number;
      const before = await count();

      const first = await call(activities.createMetaTeam, input);
      const second = await call(activities.createMetaTeam, input);
      // Two attempts at once (a retry racing a slow first attempt) also meet the same agents.
      const [third, fourth] = await Promise.all([
        call(activities.createMetaTeam, input),
        call(activities.createMetaTeam, input),
      ]);
      const ids = first.members.map((m) => m.agentId);
      assert.equal(ids.length, 3);
      for (const other of [second, third, fourth]) {
        assert.deepEqual(
          other.members.map((m) => m.agentId),
          ids,
        );
        assert.equal(other.crewId, first.crewId);
      }
      assert.equal(await count(), before + 3);
      const crews = await stack.db.query('SELECT members FROM crews WHERE id = $1', [first.crewId]);
      assert.equal(crews.rowCount, 1);
      assert.deepEqual(
        crews.rows[0].members.map((m: { agentId: string }) => m.agentId),
        ids,
      );
      for (const id of ids) {
        const agent = await stack.api.get(`/api/v1/agents/${id}`);
        assert.equal(agent.status, 200);
      }

      // A team that would pass MAX_AGENTS is refused before any agent is created.
      const limited = activitiesFor(stack, { ...stack.config, MAX_AGENTS: before + 3 + 1 });
      const refused = await call(limited.createMetaTeam, {
        ...input,
        metaId: 'ad0a7c2e-0000-4000-8000-000000000003',
      }).then(
        () => null,
        (err: unknown) => err,
      );
      assert.ok(refused instanceof ApplicationFailure, String(refused));
      assert.equal(refused.type, 'AgentLimitReached');
      assert.equal(refused.nonRetryable, true);
      assert.equal(await count(), before + 3);
    });
  });
});
