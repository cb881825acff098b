import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ScheduleNotFoundError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { reminderScheduleId } from '../contract/definitions';
import { insertReminder } from '../lib/records/reminders';
import { agentEvents } from './helpers/history';
import { killHard, startStack, testConfig, waitFor, withKillableWorkers, type TestStack } from './helpers/stack';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The tasks a reminder has fired, by scheduled time (each tick's task carries the reminder and its tick). */
async function fires(
  stack: TestStack,
  reminderId: string,
): Promise<{ id: string; scheduledFor: string; status: string }[]> {
  const { rows } = await stack.db.query(
    `SELECT id, input->'reminder'->>'scheduledFor' AS "scheduledFor", status FROM tasks
     WHERE input->'reminder'->>'id' = $1 ORDER BY input->'reminder'->>'scheduledFor'`,
    [reminderId],
  );
  return rows;
}

async function scheduleGone(stack: TestStack, reminderId: string): Promise<boolean> {
  try {
    await stack.client.schedule.getHandle(reminderScheduleId(reminderId)).describe();
    return false;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return true;
    throw err;
  }
}

/** Minutes east of UTC of a zone at an instant, from the runtime's time zone database. */
function utcOffsetMinutes(at: Date, timeZone: string): number {
  const name = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' })
    .formatToParts(at)
    .find((p) => p.type === 'timeZoneName')!.value;
  const match = /GMT([+-])(\d{2}):(\d{2})/.exec(name);
  return match ? (match[1] === '-' ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3])) : 0;
}

describe('reminders', () => {
  let stack: TestStack;
  before(async () => (stack = await startStack(testConfig())));
  after(() => stack?.stop());

  const createReminder = async (agentId: string, body: Record<string, unknown>) => {
    const res = await stack.api.post(`/api/v1/agents/${agentId}/reminders`, body);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body;
  };

  it('fires an interval reminder once per tick, and never after it is deleted', async () => {
    const agent = await stack.api.createAgent({ name: 'Ticker', objective: 'React to ticks' });
    const before = Date.now();
    const reminder = await createReminder(agent.id, { title: 'check the queue', schedule: { every: '2s' } });
    const created = Date.now();
    assert.equal(reminder.status, 'active');
    assert.ok(Date.parse(reminder.nextFireAt) > before, 'the next fire is in the future');
    assert.equal(
      Date.parse(reminder.nextFireAt) % 2000,
      0,
      'intervals count from the epoch: every 2s is on even seconds',
    );

    await waitFor(async () => (await fires(stack, reminder.id)).length >= 3, 'three fires', 20_000);
    const deleted = await stack.api.request('DELETE', `/api/v1/agents/${agent.id}/reminders/${reminder.id}`);
    assert.equal(deleted.status, 204);
    const deletedAt = Date.now();
    assert.ok(await scheduleGone(stack, reminder.id), 'its schedule is deleted');
    await sleep(5000);

    const ticks = await fires(stack, reminder.id);
    const times = ticks.map((t) => Date.parse(t.scheduledFor));
    assert.ok(times.length >= 3);
    assert.ok(times[0]! > before && times[0]! <= created + 2000, 'the first fire is the first tick after creation');
    for (const [i, t] of times.entries()) {
      assert.equal(t % 2000, 0, `tick ${i} is on the 2s grid`);
      if (i > 0) assert.equal(t - times[i - 1]!, 2000, 'consecutive ticks: none twice, none skipped');
    }
    assert.ok(times.at(-1)! < deletedAt, 'nothing fires after the delete');

    // The agent ran exactly one task per tick.
    await waitFor(
      async () => (await fires(stack, reminder.id)).every((t) => t.status === 'completed'),
      'fired tasks to finish',
    );
    const live = (await stack.api.get(`/api/v1/agents/${agent.id}`)).body.live;
    assert.equal(live.goalsCompleted, times.length);
    const listed = await stack.api.get(`/api/v1/agents/${agent.id}/reminders`);
    assert.deepEqual(listed.body.reminders, []);
    assert.equal(
      (await stack.api.request('DELETE', `/api/v1/agents/${agent.id}/reminders/${reminder.id}`)).status,
      404,
    );
  });

  it('fires a one-shot reminder once at its time', async () => {
    const agent = await stack.api.createAgent({ name: 'Alarm', objective: 'Wake up' });
    const at = new Date(Math.ceil((Date.now() + 3000) / 1000) * 1000);
    const reminder = await createReminder(agent.id, {
      title: 'wake up',
      schedule: { at: at.toISOString() },
      priority: 9,
    });
    assert.equal(reminder.nextFireAt, at.toISOString());
    const [fired] = await waitFor(async () => {
      const f = await fires(stack, reminder.id);
      return f.length ? f : undefined;
    }, 'the one-shot fire');
    assert.equal(fired!.scheduledFor, at.toISOString());
    const task = await stack.api.waitForTask(fired!.id);
    assert.equal(task.status, 'completed');
    assert.equal(task.priority, 9);
    assert.equal(task.taskType, 'reminder');
    assert.equal(task.title, 'wake up');
    await sleep(2000);
    assert.equal((await fires(stack, reminder.id)).length, 1);
    const [view] = (await stack.api.get(`/api/v1/agents/${agent.id}/reminders`)).body.reminders;
    assert.deepEqual([view.status, view.nextFireAt, view.firesSoFar], ['done', null, 1]);
  });

  it('fires a one-shot reminder whose schedule was created after its time, once', async () => {
    const agent = await stack.api.createAgent({ name: 'Late alarm', objective: 'Wake up' });
    const at = new Date(Math.ceil((Date.now() + 1000) / 1000) * 1000);
    const reminder = {
      reminderId: randomUUID(),
      orgId: stack.config.DEFAULT_ORG_ID,
      agentId: agent.id,
      title: 'wake up late',
      taskType: 'reminder',
      input: {},
      priority: null,
      delegationDepth: 0,
      schedule: { at: at.toISOString() },
      createdBy: 'api',
    };
    // The row alone, as a creation whose worker died before the schedule leaves it; the retry comes late.
    await insertReminder(stack.db, { ...reminder, id: reminder.reminderId, taskTemplate: {} });
    await sleep(at.getTime() + 1000 - Date.now());
    await stack.gateway.changeReminder({ op: 'create', reminder });
    const [fired] = await waitFor(async () => {
      const f = await fires(stack, reminder.reminderId);
      return f.length ? f : undefined;
    }, 'the late one-shot fire');
    assert.equal(fired!.scheduledFor, at.toISOString());
    // Creating it once more (a retried workflow) finds the tick taken.
    await stack.gateway.changeReminder({ op: 'create', reminder });
    await sleep(2000);
    assert.equal((await fires(stack, reminder.reminderId)).length, 1);
  });

  it('fires a one-shot reminder that came due while its agent was paused, once, when the agent resumes', async () => {
    const agent = await stack.api.createAgent({ name: 'Paused alarm', objective: 'Wake up' });
    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/pause`)).status, 200);
    const at = new Date(Math.ceil((Date.now() + 2000) / 1000) * 1000);
    const reminder = await createReminder(agent.id, {
      title: 'wake up after the pause',
      schedule: { at: at.toISOString() },
    });
    assert.equal(reminder.status, 'paused');
    await sleep(at.getTime() + 2000 - Date.now());
    assert.equal((await fires(stack, reminder.id)).length, 0, 'no fire while paused');

    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/resume`)).status, 200);
    const [fired] = await waitFor(async () => {
      const f = await fires(stack, reminder.id);
      return f.length ? f : undefined;
    }, 'the fire after resume');
    assert.equal(fired!.scheduledFor, at.toISOString());
    await sleep(2000);
    assert.equal((await fires(stack, reminder.id)).length, 1);
    const [view] = (await stack.api.get(`/api/v1/agents/${agent.id}/reminders`)).body.reminders;
    assert.deepEqual([view.status, view.nextFireAt, view.firesSoFar], ['done', null, 1]);
  });

  it('computes cron fire times in the reminder time zone across a daylight saving change', async () => {
    // The next DST change in Berlin (last Sunday of March or October): start the schedule two days before it.
    const zone = 'Europe/Berlin';
    const day = 86_400_000;
    let change = Math.floor(Date.now() / day) * day + day;
    while (utcOffsetMinutes(new Date(change), zone) === utcOffsetMinutes(new Date(change + day), zone)) change += day;
    const offsetBefore = utcOffsetMinutes(new Date(change), zone);
    const offsetAfter = utcOffsetMinutes(new Date(change + day), zone);
    assert.equal(Math.abs(offsetAfter - offsetBefore), 60, 'Berlin moves its clocks by one hour');
    const startAt = new Date(change - 2 * day).toISOString();

    const agent = await stack.api.createAgent({ name: 'Morning', objective: 'Morning routine' });
    const reminder = await createReminder(agent.id, {
      title: 'morning report',
      schedule: { cron: '30 9 * * *', timezone: zone, startAt },
    });
    const description = await stack.client.schedule.getHandle(reminderScheduleId(reminder.id)).describe();
    const next = description.info.nextActionTimes.slice(0, 5).map((d) => d.toISOString());
    // `change` is midnight UTC of the day the clocks move (at 02:00 or 03:00 local, before 09:30).
    // 09:30 local each day: the UTC instant moves by an hour on that day.
    const changeDay = new Date(change);
    const expected = [-2, -1, 0, 1, 2].map((k) => {
      const local = Date.UTC(changeDay.getUTCFullYear(), changeDay.getUTCMonth(), changeDay.getUTCDate() + k, 9, 30);
      return new Date(local - (k < 0 ? offsetBefore : offsetAfter) * 60_000).toISOString();
    });
    assert.deepEqual(next, expected);
    assert.equal(reminder.nextFireAt, expected[0]);
    assert.notEqual(
      new Date(expected[1]!).getUTCHours(),
      new Date(expected[2]!).getUTCHours(),
      'the UTC hour changes with the clocks',
    );
  });

  it('pauses with its agent and fires again when the agent resumes', async () => {
    const agent = await stack.api.createAgent({ name: 'Sleeper', objective: 'Nap' });
    const reminder = await createReminder(agent.id, { title: 'stretch', schedule: { every: '1s' } });
    await waitFor(async () => (await fires(stack, reminder.id)).length >= 1, 'a first fire', 15_000);

    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/pause`)).status, 200);
    // The agent pauses its reminders before the pause answers.
    const paused = await stack.client.schedule.getHandle(reminderScheduleId(reminder.id)).describe();
    assert.equal(paused.state.paused, true);
    const [view] = (await stack.api.get(`/api/v1/agents/${agent.id}/reminders`)).body.reminders;
    assert.deepEqual([view.status, view.nextFireAt], ['paused', null]);
    await sleep(1500); // a fire that started before the pause may still land
    const atPause = (await fires(stack, reminder.id)).length;
    await sleep(4000);
    assert.equal((await fires(stack, reminder.id)).length, atPause, 'no fires while paused');

    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/resume`)).status, 200);
    assert.equal(
      (await stack.client.schedule.getHandle(reminderScheduleId(reminder.id)).describe()).state.paused,
      false,
    );
    await waitFor(async () => (await fires(stack, reminder.id)).length > atPause, 'a fire after resume', 15_000);
    const reminderCreatedWhilePaused = await (async () => {
      await stack.api.post(`/api/v1/agents/${agent.id}/pause`);
      return createReminder(agent.id, { title: 'later', schedule: { every: '1h' } });
    })();
    assert.equal(reminderCreatedWhilePaused.status, 'paused', 'a reminder of a paused agent starts paused');
  });

  it('removes every reminder of an archived agent', async () => {
    const agent = await stack.api.createAgent({ name: 'Leaver', objective: 'Leave' });
    const hourly = await createReminder(agent.id, { title: 'hourly', schedule: { every: '1h' } });
    const weekdays = await createReminder(agent.id, {
      title: 'weekdays',
      schedule: { cron: '0 9 * * 1-5', timezone: 'Europe/Berlin' },
    });
    assert.equal((await stack.api.get(`/api/v1/agents/${agent.id}/reminders`)).body.reminders.length, 2);

    assert.equal((await stack.api.post(`/api/v1/agents/${agent.id}/archive`)).status, 200);
    assert.ok(await scheduleGone(stack, hourly.id), 'hourly schedule deleted');
    assert.ok(await scheduleGone(stack, weekdays.id), 'cron schedule deleted');
    const { rows } = await stack.db.query('SELECT status FROM reminders WHERE agent_id = $1', [agent.id]);
    assert.deepEqual(
      rows.map((r) => r.status),
      ['removed', 'removed'],
    );
    assert.deepEqual((await stack.api.get(`/api/v1/agents/${agent.id}/reminders`)).body.reminders, []);
    const refused = await stack.api.post(`/api/v1/agents/${agent.id}/reminders`, {
      title: 'again',
      schedule: { every: '1h' },
    });
    assert.equal(refused.status, 409);
  });

  it('records histories that replay with the current code (agent hooks behind their patch, fires)', async () => {
    const agent = await stack.api.createAgent({ name: 'Recorded', objective: 'Be replayed' });
    const reminder = await createReminder(agent.id, { title: 'tick', schedule: { every: '1s' } });
    await waitFor(async () => (await fires(stack, reminder.id)).length >= 1, 'a fire', 15_000);
    const [fired] = (await stack.client.schedule.getHandle(reminderScheduleId(reminder.id)).describe()).info
      .recentActions;
    await stack.api.post(`/api/v1/agents/${agent.id}/pause`);
    await stack.api.post(`/api/v1/agents/${agent.id}/resume`);
    await stack.api.post(`/api/v1/agents/${agent.id}/archive`);

    const agentHistory = await stack.client.workflow.getHandle(`agent-${agent.id}`).fetchHistory();
    const activities = (await agentEvents(stack, agent.id)).flatMap(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [],
    );
    assert.deepEqual(
      activities.filter((name) => /Reminder/.test(name)),
      ['setAgentRemindersPaused', 'setAgentRemindersPaused', 'removeAgentReminders'],
    );
    const replay = { workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE_PATH! } };
    await Worker.runReplayHistory(replay, agentHistory, `agent-${agent.id}`);
    const fireId = fired!.action.workflow.workflowId;
    await Worker.runReplayHistory(replay, await stack.client.workflow.getHandle(fireId).fetchHistory(), fireId);
  });

  it('answers 400 with what is wrong for invalid schedules, 404 for unknown agents', async () => {
    const agent = await stack.api.createAgent({ name: 'Strict', objective: 'Validate' });
    const cases: [unknown, RegExp][] = [
      [{ cron: '61 * * * *' }, /schedule\.cron: "61 \* \* \* \*" minute 61 is out of range 0-59/],
      [{ cron: '0 25 * * *', timezone: 'UTC' }, /schedule\.cron: .*hour 25 is out of range 0-23/],
      [{ cron: '0 9 * *' }, /schedule\.cron: .*has 4 field\(s\); expected 5/],
      [{ cron: '0 9 * * 1-5', timezone: 'Mars/Base' }, /schedule\.timezone: "Mars\/Base" is not an IANA time zone/],
      [{ every: '0s' }, /schedule\.every: "0s" is too short/],
      [{ every: 'often' }, /schedule\.every: "often" is not a duration/],
      [{ at: '2020-01-01T00:00:00Z' }, /schedule\.at: must be in the future/],
      [{ at: 'tomorrow' }, /schedule\.at: /],
      [{ every: '1h', cron: '* * * * *' }, /schedule: send exactly one of/],
      [{}, /schedule: send exactly one of/],
    ];
    for (const [schedule, message] of cases) {
      const res = await stack.api.post(`/api/v1/agents/${agent.id}/reminders`, { title: 'bad', schedule });
      assert.equal(res.status, 400, JSON.stringify(schedule));
      assert.match(res.body.error.message, message);
    }
    const unknown = await stack.api.post('/api/v1/agents/00000000-0000-4000-8000-000000000000/reminders', {
      title: 't',
      schedule: { every: '1h' },
    });
    assert.equal(unknown.status, 404);
    assert.equal((await stack.api.get('/api/v1/agents/not-a-uuid/reminders')).status, 404);
    assert.equal(
      (await stack.api.request('DELETE', `/api/v1/agents/${agent.id}/reminders/00000000-0000-4000-8000-000000000000`))
        .status,
      404,
    );
    assert.deepEqual(
      (await stack.api.get(`/api/v1/agents/${agent.id}/reminders`)).body.reminders,
      [],
      'nothing was created',
    );
  });

  it('lets an agent schedule its own recurring goal with create_reminder', async () => {
    const agent = await stack.api.createAgent({
      name: 'Planner',
      objective: 'Plan ahead',
      allowedTools: ['create_reminder'],
    });
    const script = [
      {
        call: 'create_reminder',
        args: { title: 'weekly review', schedule: { cron: '0 16 * * 5', timezone: 'America/New_York' } },
      },
      { call: 'create_reminder', args: { title: 'broken', schedule: { cron: '0 9 * * 8' } } },
      { answer: 'scheduled' },
    ];
    const task = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: agent.id, title: 'plan', input: { script } })).id,
    );
    assert.equal(task.status, 'completed');
    const [created, refused] = task.reasoningTrace.filter((d: any) => d.decisionType === 'tool_call');
    assert.equal(created.result.title, 'weekly review');
    assert.match(refused.result.error, /schedule\.cron: "0 9 \* \* 8" day-of-week 8 is out of range 0-7/);

    const [listed, ...others] = (await stack.api.get(`/api/v1/agents/${agent.id}/reminders`)).body.reminders;
    assert.equal(others.length, 0);
    assert.equal(listed.id, created.result.id);
    assert.deepEqual(listed.schedule, { cron: '0 16 * * 5', timezone: 'America/New_York' });
    const next = new Date(listed.nextFireAt);
    assert.equal(next.getUTCDay(), 5);
    assert.ok([20, 21].includes(next.getUTCHours()), '16:00 in New York is 20:00 or 21:00 UTC');
  });
});

/**
 * A worker process is SIGKILLed after a fire submitted its goal and before the fire reported back: the
 * fire is retried on another worker and submits the same task, which the agent runs once.
 */
describe('a reminder fire interrupted by a worker crash', () => {
  const crash = withKillableWorkers();

  it('does not fire twice for one tick', async () => {
    // This worker waits after each submitted fire: the window in which a crash forces a retry.
    const slow = await crash.start({ FAULT_DELAY_AFTER_SIDE_EFFECT_MS: '60000' });
    const agent = await crash.stack.api.createAgent({ name: 'Steady', objective: 'Once per tick' });
    const at = new Date(Math.ceil((Date.now() + 3000) / 1000) * 1000);
    const res = await crash.stack.api.post(`/api/v1/agents/${agent.id}/reminders`, {
      title: 'once',
      schedule: { at: at.toISOString() },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const reminderId = res.body.id;

    const [submitted] = await waitFor(
      async () => {
        const f = await fires(crash.stack, reminderId);
        return f.length ? f : undefined;
      },
      'the fire to submit its goal',
      20_000,
    );
    const schedule = crash.stack.client.schedule.getHandle(reminderScheduleId(reminderId));
    const [running] = (await schedule.describe()).info.runningActions;
    assert.ok(running, 'the fire has not reported yet');
    await killHard(slow);

    await crash.start();
    const fire = crash.stack.client.workflow.getHandle(
      running.workflow.workflowId,
      running.workflow.firstExecutionRunId,
    );
    const result = await fire.result();
    assert.deepEqual(result, {
      reminderId,
      taskId: submitted!.id,
      scheduledFor: at.toISOString(),
      outcome: 'submitted',
    });
    const history = await fire.fetchHistory();
    const attempts = history
      .events!.filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt);
    assert.deepEqual(attempts, [2], 'the fire was retried after the crash (the history records the last attempt)');

    const task = await crash.stack.api.waitForTask(submitted!.id, 60_000);
    assert.equal(task.status, 'completed');
    await sleep(2000);
    assert.equal((await fires(crash.stack, reminderId)).length, 1, 'one task for the tick');
    const live = (await crash.stack.api.get(`/api/v1/agents/${agent.id}`)).body.live;
    assert.equal(live.goalsCompleted, 1, 'the agent ran it once');
    assert.equal(live.queue.length, 0);
  });
});
