import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { faultSchedule, judge, type ChaosTally, type Observations } from '../chaos/harness';

const ROOT = path.resolve(__dirname, '..');
const onCluster = process.env.TEST_TEMPORAL === 'cluster';

/**
 * The short chaos run: 30 tasks across 6 agents on a private stack (the shared test server cannot be
 * restarted), submitted while the worker is SIGKILLed every few seconds, Temporal and PostgreSQL are
 * restarted and a fifth of the model requests fail; approvals are decided and reminders fire meanwhile.
 * On the dev-server pass Temporal is the dev server, restarted once; on the cluster pass it is the
 * self-hosted cluster, whose history and matching services are SIGKILLed twice each and whose frontend is
 * restarted. The run's own checks decide its exit code; this test also asserts that the faults really
 * happened and that the guarantees held.
 */
describe('chaos', () => {
  it('the checks catch lost tasks, double side effects, pending or contradicted approvals and nondeterminism', () => {
    const clean = observations();
    assert.deepEqual(judge(clean).violations, []);

    const broken = observations();
    broken.tasks[1]!.status = undefined;
    broken.tasks[0]!.agentHold = 'running';
    broken.memoryMarkers.push('c0:1');
    broken.messageKeys.push('task-t2:1:1');
    broken.httpReceivedKeys.push('task-t1:1:0');
    broken.approvals[0]!.status = 'pending';
    broken.approvals[1]!.status = 'approved';
    broken.nondeterminism = 1;
    const violations = judge(broken).violations.join('\n');
    assert.match(violations, /task t1 \(c1\) has no row: lost/);
    assert.match(violations, /task t0 \(c0\) is still running in its agent.s workflow/);
    assert.match(violations, /memory_write c0:1 applied 2 times/);
    assert.match(violations, /send_message task-t2:1:1 applied twice/);
    assert.match(violations, /http_post task-t1:1:0 received 2 times/);
    assert.match(violations, /approval a0 is still pending/);
    assert.match(violations, /approval a1 was left alone but is approved/);
    assert.match(violations, /1 workflow task\(s\) failed for nondeterminism/);

    const unrecorded = observations();
    unrecorded.tasks[2]!.status = 'failed';
    unrecorded.tasks[2]!.error = null;
    unrecorded.tasks[2]!.decisions = 0;
    unrecorded.ledger.push({ key: 'task-t0:2:0', tool: 'memory_write', taskId: 't0', result: {} });
    unrecorded.approverRecords.a0 = { decision: 'reject', status: 200, taskId: 't0' };
    const more = judge(unrecorded).violations.join('\n');
    assert.match(more, /task t2 \(c2\) failed without a recorded reason/);
    assert.match(more, /task t2 \(c2\) has no reasoning trace/);
    assert.match(more, /task t0 \(c0\): 1 memory writes applied, 2 ledger keys/);
    assert.match(more, /approval a0: the API answered reject with 200 but it is approved/);

    // Strict endings: a failure the run did not inject is the infrastructure's, and an injected one must take.
    const strict = observations();
    strict.tasks[0]!.status = 'failed';
    strict.tasks[0]!.error = 'step 2 failed: activity StartToClose timeout';
    strict.tasks[1]!.injected = 'provider_outage';
    strict.tasks[2]!.error = 'chaos-outage: the provider is down for this task';
    strict.reminders[0]!.fires.push('2026-01-01T00:01:10.000Z');
    strict.reminders[1]!.fires.push('2026-01-01T00:00:31.000Z');
    strict.reminders.push({ label: 'r1', kind: 'every', created: true, fires: [] });
    const judged = judge(strict);
    const strictViolations = judged.violations.join('\n');
    assert.match(strictViolations, /task t0 \(c0\) failed by the infrastructure: step 2 failed/);
    assert.match(strictViolations, /task t1 \(c1\) completed although the run injected provider_outage/);
    assert.match(
      strictViolations,
      /task t2 \(c2\) failed by the infrastructure \(its injected cause was approval_expired\)/,
    );
    assert.match(strictViolations, /reminder r0 fired after its deletion/);
    assert.match(strictViolations, /one-shot reminder o0 fired 2 times, not once/);
    assert.match(strictViolations, /interval reminder r1 never fired/);
    assert.equal(judged.tasks.infrastructureFailures, 2);
    assert.equal(judge(observations()).tasks.injectedFailures.approval_expired, 1);
  });

  it('schedules the cluster faults: history and matching killed several times, frontend and PostgreSQL restarted', () => {
    const kinds = (n: number) => faultSchedule('cluster', n).map((e) => e.kind);
    assert.deepEqual(kinds(2), ['history', 'matching', 'frontend', 'postgres', 'history', 'matching']);
    assert.deepEqual(kinds(3).filter((k) => k === 'history').length, 3);
    assert.deepEqual(kinds(3).filter((k) => k === 'matching').length, 3);
    const at = faultSchedule('cluster', 3).map((e) => e.at);
    assert.deepEqual(
      [...at].sort((a, b) => a - b),
      at,
      'in order',
    );
    assert.ok(at[0]! > 0 && at.at(-1)! < 1);
    assert.deepEqual(
      faultSchedule('dev', 3).map((e) => e.kind),
      ['temporal', 'postgres'],
    );
  });

  it(
    'keeps every guarantee through worker kills, server and database restarts and provider faults (dev server)',
    { timeout: 8 * 60_000, skip: onCluster && 'the cluster pass runs the cluster version' },
    async () => {
      const jsonPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'chaos-test-')), 'tally.json');
      const { code, output } = await runShortChaos(jsonPath, { CHAOS_FAULT_RATE: '0.2', CHAOS_SEED: '7' });
      assert.ok(fs.existsSync(jsonPath), `no tally written (exit ${code}):\n${output.slice(-3000)}`);
      const tally = JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as ChaosTally;
      assert.deepEqual(tally.violations, [], output.slice(-3000));
      assert.equal(tally.ok, true);
      assert.equal(code, 0, 'the run exits 0 when every guarantee held');

      // Every task (30, one per stalled agent and the reminders' fires) reached completed or failed, with a
      // reason, a trace and its agent done with it.
      const submitted = 30 + tally.stalled.agents;
      assert.equal(tally.tasks.submitted, submitted);
      const all = submitted + tally.tasks.fromReminders;
      assert.equal(
        (tally.tasks.byStatus.completed ?? 0) + (tally.tasks.byStatus.failed ?? 0),
        all,
        JSON.stringify(tally.tasks),
      );
      assert.deepEqual(tally.tasks.agentHolds, { done: all });

      // As many agents as AGENTS_MAX_ACTIVE waited for a human the whole time, and every other task still finished.
      assert.equal(tally.stalled.agents, 2);
      assert.equal(tally.stalled.othersFinishedWhileTheyWaited, true);
      assert.ok((tally.tasks.byStatus.completed ?? 0) > 0);

      // The chaos happened.
      assert.ok(tally.chaos.workerKills >= 1, JSON.stringify(tally.chaos));
      assert.equal(tally.chaos.temporalRestarts, 1);
      assert.equal(tally.chaos.postgresRestarts, 1);
      assert.ok(tally.faults.total > 0, JSON.stringify(tally.faults));
      assert.ok(tally.workflows.activityRetries > 0, 'faults and kills forced activity retries');
      assertStrictEndings(tally);

      // Approvals: all settled; some decided through the API, some left to expire (their tasks failed).
      assert.equal(tally.approvals.pending, 0);
      assert.equal(
        tally.approvals.total,
        tally.approvals.approved + tally.approvals.rejected + tally.approvals.expired,
      );
      assert.ok(tally.approvals.decidedByApprover > 0, JSON.stringify(tally.approvals));
      assert.ok(
        tally.approvals.expired >= tally.approvals.leftToExpire && tally.approvals.leftToExpire > 0,
        JSON.stringify(tally.approvals),
      );
      assert.match(Object.keys(tally.tasks.failureReasons).join('\n'), /expired/);

      // Side effects: each ledger key applied exactly once (http_post: at most once).
      assert.ok(tally.sideEffects.memory_write.ledgerKeys > 0);
      assert.equal(tally.sideEffects.memory_write.applied, tally.sideEffects.memory_write.ledgerKeys);
      assert.equal(tally.sideEffects.send_message.applied, tally.sideEffects.send_message.ledgerKeys);
      assert.ok(tally.sideEffects.http_post.applied <= tally.sideEffects.http_post.ledgerKeys);

      assert.equal(tally.workflows.nondeterminism, 0);
      // Every run on the server: the 6 agents and the 2 stalled ones (goals run inside them), with any continue-as-new runs.
      assert.ok(tally.workflows.scanned >= 8, `every agent workflow was scanned (${tally.workflows.scanned} runs)`);
    },
  );

  it(
    'keeps every guarantee on the cluster through history and matching kills, a frontend and a PostgreSQL restart',
    { timeout: 8 * 60_000, skip: !onCluster && 'runs on the cluster pass' },
    async () => {
      const jsonPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'chaos-test-')), 'tally.json');
      const { code, output } = await runShortChaos(jsonPath, { CHAOS_FAULT_RATE: '0.2', CHAOS_SEED: '7' }, [
        '--cluster',
      ]);
      assert.ok(fs.existsSync(jsonPath), `no tally written (exit ${code}):\n${output.slice(-3000)}`);
      const tally = JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as ChaosTally;
      assert.deepEqual(tally.violations, [], output.slice(-3000));
      assert.equal(tally.ok, true);
      assert.equal(code, 0, 'the run exits 0 when every guarantee held');
      assert.equal(tally.profile, 'cluster');

      // The cluster's fault schedule happened in full, during the run.
      assert.deepEqual(
        {
          history: tally.chaos.historyKills,
          matching: tally.chaos.matchingKills,
          frontend: tally.chaos.frontendRestarts,
          postgres: tally.chaos.postgresRestarts,
          events: tally.chaos.events.length,
        },
        { history: 2, matching: 2, frontend: 1, postgres: 1, events: tally.chaos.eventsPlanned },
        JSON.stringify(tally.chaos),
      );
      assert.ok((tally.chaos.serviceRestarts.history ?? 0) >= 2, JSON.stringify(tally.chaos.serviceRestarts));
      assert.ok((tally.chaos.serviceRestarts.matching ?? 0) >= 2, JSON.stringify(tally.chaos.serviceRestarts));
      assert.ok((tally.chaos.serviceRestarts.frontend ?? 0) >= 1, JSON.stringify(tally.chaos.serviceRestarts));
      assert.ok(tally.chaos.workerKills >= 1, JSON.stringify(tally.chaos));
      assert.ok(tally.faults.total > 0, JSON.stringify(tally.faults));

      const submitted = 30 + tally.stalled.agents;
      assert.equal(tally.tasks.submitted, submitted);
      assert.deepEqual(tally.tasks.agentHolds, { done: submitted + tally.tasks.fromReminders });
      assert.equal(tally.stalled.othersFinishedWhileTheyWaited, true);
      assert.equal(tally.approvals.pending, 0);
      assert.ok(tally.approvals.decidedByApprover > 0, JSON.stringify(tally.approvals));
      assert.equal(tally.sideEffects.memory_write.applied, tally.sideEffects.memory_write.ledgerKeys);
      assert.equal(tally.sideEffects.send_message.applied, tally.sideEffects.send_message.ledgerKeys);
      assert.equal(tally.workflows.nondeterminism, 0);
      assertStrictEndings(tally);
    },
  );
});

/** Every task completed or failed for a cause the run injected; the work went on during the chaos. */
function assertStrictEndings(tally: ChaosTally): void {
  assert.equal(tally.tasks.infrastructureFailures, 0, JSON.stringify(tally.tasks));
  const failed = tally.tasks.byStatus.failed ?? 0;
  assert.equal(failed, tally.tasks.injectedFailures.approval_expired + tally.tasks.injectedFailures.provider_outage);
  assert.ok(tally.tasks.injectedFailures.approval_expired > 0, JSON.stringify(tally.tasks));
  assert.equal(tally.tasks.injectedFailures.provider_outage, tally.settings.outageTasks, JSON.stringify(tally.tasks));
  assert.ok(tally.faults.outages > tally.settings.outageTasks, 'each outage task saw several failed requests');

  // Submissions, decisions and reminder fires spread over the chaos, not only before it.
  const [firstSubmission, lastSubmission] = tally.timeline.submissionsSeconds;
  assert.ok(lastSubmission - firstSubmission >= tally.settings.submitSeconds * 0.8, JSON.stringify(tally.timeline));
  const decisions = tally.timeline.approvalDecisionsSeconds;
  assert.ok(
    decisions && decisions[1] - decisions[0] >= tally.settings.submitSeconds / 2,
    JSON.stringify(tally.timeline),
  );
  const fires = tally.timeline.reminderFiresSeconds;
  assert.ok(fires && fires[0] < lastSubmission, JSON.stringify(tally.timeline));
  assert.equal(tally.reminders.oneShot, tally.settings.oneShotReminders);
  assert.ok(
    tally.reminders.intervalFires.every((n) => n >= 1),
    JSON.stringify(tally.reminders),
  );
  assert.ok(tally.tasks.fromReminders >= tally.settings.oneShotReminders + tally.settings.intervalReminders);
}

function runShortChaos(
  jsonPath: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'chaos/run.ts'), '--short', '--json', jsonPath, ...args],
      {
        cwd: ROOT,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

/** A consistent little run: three tasks, their side effects and ledger, two approvals. */
function observations(): Observations {
  return {
    tasks: [
      { id: 't0', ticket: 'c0', status: 'completed', error: null, decisions: 3, agentHold: 'done' },
      { id: 't1', ticket: 'c1', status: 'completed', error: null, decisions: 2, agentHold: 'done' },
      {
        id: 't2',
        ticket: 'c2',
        status: 'failed',
        error: 'approval x for memory_write expired: no decision',
        decisions: 2,
        agentHold: 'done',
        injected: 'approval_expired',
      },
    ],
    ledger: [
      { key: 'task-t0:1:0', tool: 'memory_write', taskId: 't0', result: {} },
      { key: 'task-t2:1:1', tool: 'send_message', taskId: 't2', result: {} },
      { key: 'task-t1:1:0', tool: 'http_post', taskId: 't1', result: { status: 204 } },
    ],
    memoryMarkers: ['c0:1'],
    messageKeys: ['task-t2:1:1'],
    httpReceivedKeys: ['task-t1:1:0'],
    approvals: [
      { id: 'a0', taskId: 't0', step: 1, callIndex: 0, status: 'approved' },
      { id: 'a1', taskId: 't2', step: 2, callIndex: 0, status: 'expired' },
    ],
    approverRecords: {
      a0: { decision: 'approve', status: 200, taskId: 't0' },
      a1: { decision: 'leave', taskId: 't2' },
    },
    reminders: [
      {
        label: 'r0',
        kind: 'every',
        created: true,
        deletedAt: '2026-01-01T00:01:00.000Z',
        fires: ['2026-01-01T00:00:50.000Z'],
      },
      { label: 'o0', kind: 'at', created: true, fires: ['2026-01-01T00:00:30.000Z'] },
    ],
    nondeterminism: 0,
  };
}
