import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { agentWorkflowId } from '../contract/definitions';
import { startFakeOpenAi, type FakeOpenAiServer, type RecordedRequest } from './helpers/fake-openai-server';
import { startStack, testConfig, waitFor, type TestStack } from './helpers/stack';

/** A city and the year something was built there; the city capitalised. */
const CITY_YEAR = {
  type: 'object',
  required: ['city', 'year'],
  properties: { city: { type: 'string', pattern: '^[A-Z]' }, year: { type: 'integer' } },
  additionalProperties: false,
};

type Message = { role: string; content: string | null };
const messagesOf = (r: RecordedRequest) => (r.body as { messages: Message[] }).messages;
const isReview = (r: RecordedRequest) => messagesOf(r).some((m) => m.content?.startsWith('OUTPUT REVIEW'));

/**
 * The validating stage (docs/agents.md "Checked output"), through the HTTP API on the real stack: answers
 * checked against a JSON Schema and against acceptance criteria judged by a model call, a failed check sent
 * back to the model with its reasons, bounded attempts, and the refusals of bad checks at submission. Agents
 * continue as new after 100 history events, so queued checked goals travel through continue-as-new too.
 */
describe('checked output', () => {
  let stack: TestStack;
  let openai: FakeOpenAiServer;
  before(async () => {
    openai = await startFakeOpenAi();
    stack = await startStack(
      testConfig({
        OPENAI_API_KEY: 'sk-test',
        OPENAI_BASE_URL: openai.url,
        PRIORITY_SCORING: 'off',
        AGENT_HISTORY_LIMIT: '100',
      }),
    );
  });
  after(async () => {
    await stack?.stop();
    await openai?.close();
  });

  const agent = (name: string, extra: Record<string, unknown> = {}) =>
    stack.api.createAgent({ name, objective: 'answer precisely', provider: 'offline', ...extra });
  const trace = (task: { reasoningTrace: { decisionType: string; step: number; result: any }[] }) =>
    task.reasoningTrace.filter((d) => d.decisionType === 'validate');

  it('a schema: a failed check goes back to the model with its reasons, and the task completes with the JSON', async () => {
    const a = await agent('Schema');
    const created = await stack.api.createTask({
      agentId: a.id,
      title: 'Where and when was the tower built?',
      expectedOutput: CITY_YEAR,
      input: {
        script: [
          { answer: 'Paris, in 1889.' },
          { answer: 'Here it is:\n```json\n{"city":"paris"}\n```' },
          { answer: '{"city":"Paris","year":1889}' },
        ],
      },
    });
    assert.deepEqual(created.validation, { expectedOutput: CITY_YEAR, maxAttempts: 3 });
    const done = await stack.api.waitForTask(created.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.steps, 3);
    // The offline provider marks its answers; the JSON inside is still found.
    assert.deepEqual(done.output, {
      answer: '[offline] {"city":"Paris","year":1889}',
      output: { city: 'Paris', year: 1889 },
    });
    const checks = trace(done);
    assert.deepEqual(
      checks.map((d) => [d.step, d.result.passed]),
      [
        [1, false],
        [2, false],
        [3, true],
      ],
    );
    assert.deepEqual(checks[0]!.result.reasons, ['the answer is not JSON; answer with JSON only']);
    assert.deepEqual(checks[1]!.result.reasons.sort(), [
      "(the whole answer) must have required property 'year'",
      '/city must match pattern "^[A-Z]"',
    ]);
    // The answers before the last were the model's to fix: each check's decision follows its answer.
    assert.deepEqual(
      done.reasoningTrace.map((d: { step: number; decisionType: string }) => `${d.step}:${d.decisionType}`),
      ['1:complete', '1:validate', '2:complete', '2:validate', '3:complete', '3:validate'],
    );
  });

  it('the model is told why, the reviewer judges the criteria through the provider, and its tokens count', async () => {
    const a = await agent('Reviewed', { provider: 'openai', model: 'gpt-test' });
    const answers = ['The tower is in Paris.', 'The tower is in Paris; it was finished in 1889.'];
    for (const content of answers)
      openai.enqueue(
        { kind: 'completion', content, usage: { promptTokens: 40, completionTokens: 10 } },
        { when: (r) => !isReview(r) },
      );
    // The first review is slow, so the task is seen `validating`.
    openai.enqueue(
      {
        kind: 'completion',
        content: '{"pass": false, "reasons": ["it does not say when the tower was finished"]}',
        usage: { promptTokens: 30, completionTokens: 12 },
        delayMs: 1500,
      },
      { when: isReview },
    );
    openai.enqueue(
      {
        kind: 'completion',
        content: '{"pass": true, "reasons": []}',
        usage: { promptTokens: 30, completionTokens: 8 },
      },
      { when: isReview },
    );
    const seen = openai.requests.length;
    const created = await stack.api.createTask({
      agentId: a.id,
      title: 'Where is the tower, and when was it finished?',
      acceptanceCriteria: 'Names the city and the year the tower was finished.',
      maxValidationAttempts: 2,
    });
    await waitFor(
      async () => (await stack.api.get(`/api/v1/tasks/${created.id}`)).body.status === 'validating' || undefined,
      'the task to be validating',
      15_000,
    );
    const done = await stack.api.waitForTask(created.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.deepEqual(done.output, { answer: answers[1] });

    const requests = openai.requests.slice(seen);
    assert.deepEqual(
      requests.map((r) => (isReview(r) ? 'review' : 'answer')),
      ['answer', 'review', 'answer', 'review'],
    );
    const firstReview = messagesOf(requests[1]!)
      .map((m) => m.content)
      .join('\n');
    assert.match(firstReview, /Names the city and the year the tower was finished\./);
    assert.match(firstReview, /<answer>\nThe tower is in Paris\.\n<\/answer>/);
    // The second answer was asked for with the reviewer's reason in the conversation.
    const feedback = messagesOf(requests[2]!).at(-1)!;
    assert.equal(feedback.role, 'user');
    assert.match(feedback.content!, /did not pass its check:\n- it does not say when the tower was finished\n/);
    assert.match(feedback.content!, /1 check\(s\) left/);

    assert.deepEqual(
      trace(done).map((d) => d.result.passed),
      [false, true],
    );
    // Every call is counted once: two answers and two reviews.
    const calls = await stack.db.query(
      'SELECT step, purpose, input_tokens, output_tokens FROM llm_calls WHERE task_id = $1 ORDER BY step, purpose',
      [created.id],
    );
    assert.deepEqual(
      calls.rows.map((r) => `${r.step}:${r.purpose}`),
      ['1:review', '1:step', '2:review', '2:step'],
    );
    assert.deepEqual(done.usage, { inputTokens: 40 + 30 + 40 + 30, outputTokens: 10 + 12 + 10 + 8 });
  });

  it('fails with the reasons once the checks are spent, keeping the last answer', async () => {
    const a = await agent('Stubborn');
    const created = await stack.api.createTask({
      agentId: a.id,
      title: 'Name the year',
      acceptanceCriteria: 'The answer must say "1889".',
      maxValidationAttempts: 2,
      input: { script: [{ answer: 'A long time ago.' }, { answer: 'In the nineteenth century.' }] },
    });
    const done = await stack.api.waitForTask(created.id);
    assert.equal(done.status, 'failed', JSON.stringify(done));
    assert.equal(done.error, 'the answer failed its check 2 time(s): the answer does not mention "1889"');
    assert.deepEqual(done.output, {
      answer: '[offline] In the nineteenth century.',
      validation: { reasons: ['the answer does not mention "1889"'] },
    });
    assert.equal(done.steps, 2);
    assert.deepEqual(
      trace(done).map((d) => d.result.passed),
      [false, false],
    );
  });

  it('an answer refused on the last step fails the task with the reasons, not as "no final answer"', async () => {
    const a = await agent('Last step');
    const reads = Array.from({ length: 9 }, () => ({ call: 'memory_read', args: { key: 'k' } }));
    const done = await stack.api.waitForTask(
      (
        await stack.api.createTask({
          agentId: a.id,
          title: 'Answer at the very end',
          acceptanceCriteria: 'Says "done".',
          input: { script: [...reads, { answer: 'not yet' }] },
        })
      ).id,
    );
    assert.equal(done.status, 'failed', JSON.stringify(done));
    assert.equal(done.steps, 10, 'MAX_STEPS');
    assert.equal(done.error, 'the answer failed its check 1 time(s): the answer does not mention "done"');
    assert.equal(done.output.answer, '[offline] not yet');
  });

  it('a handed-off task takes its check along to the agent it goes to', async () => {
    const first = await agent('Triage', { allowedTools: ['send_message'] });
    const second = await agent('Specialist');
    const done = await stack.api.waitForTask(
      (
        await stack.api.createTask({
          agentId: first.id,
          title: 'Resolve ticket 42',
          acceptanceCriteria: 'Mentions "ticket 42".',
          input: {
            script: [{ call: 'send_message', args: { toAgentId: second.id, type: 'handoff', content: 'yours' } }],
          },
        })
      ).id,
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const moved = await stack.api.waitForTask(done.output.handedOffTo.taskId);
    assert.deepEqual(moved.validation, { acceptanceCriteria: 'Mentions "ticket 42".', maxAttempts: 3 });
    assert.equal(moved.status, 'completed', JSON.stringify(moved));
    assert.deepEqual(
      trace(moved).map((d) => d.result.passed),
      [true],
      "the specialist's answer was checked",
    );
  });

  it('both checks: the schema first, and the reviewer only sees a well-formed answer', async () => {
    const a = await agent('Both');
    const done = await stack.api.waitForTask(
      (
        await stack.api.createTask({
          agentId: a.id,
          title: 'The tower as JSON',
          expectedOutput: CITY_YEAR,
          acceptanceCriteria: 'The city is "Paris".',
          input: {
            script: [
              { answer: '{"city":"Paris"}' },
              { answer: '{"city":"Lyon","year":1889}' },
              { answer: '{"city":"Paris","year":1889}' },
            ],
          },
        })
      ).id,
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.deepEqual(done.output.output, { city: 'Paris', year: 1889 });
    assert.deepEqual(
      trace(done).map((d) => d.result.reasons),
      [["(the whole answer) must have required property 'year'"], ['the answer does not mention "Paris"'], []],
    );
    const reviews = await stack.db.query(
      `SELECT step FROM llm_calls WHERE task_id = $1 AND purpose = 'review' ORDER BY step`,
      [done.id],
    );
    assert.deepEqual(
      reviews.rows.map((r) => r.step),
      [2, 3],
      'no review of the answer the schema refused',
    );
  });

  it('checked goals queued behind a long one keep their checks through continue-as-new', async () => {
    const a = await agent('Carried');
    const handle = stack.client.workflow.getHandle(agentWorkflowId(a.id));
    const firstRun = (await handle.describe()).runId;
    // Many steps: the agent's history passes 100 events before the checked goals start.
    const busy = await stack.api.createTask({
      agentId: a.id,
      title: 'Read a lot first',
      input: {
        script: [...Array.from({ length: 8 }, () => ({ call: 'memory_read', args: { key: 'k' } })), { answer: 'read' }],
      },
    });
    const checked = [];
    for (const city of ['Paris', 'Rome'])
      checked.push(
        await stack.api.createTask({
          agentId: a.id,
          title: `The tower of ${city}`,
          expectedOutput: CITY_YEAR,
          maxValidationAttempts: 2,
          input: {
            script: [
              { answer: `{"city":"${city.toLowerCase()}","year":1}` },
              { answer: `{"city":"${city}","year":1}` },
            ],
          },
        }),
      );
    const read = await stack.api.waitForTask(busy.id, 60_000);
    assert.equal(read.status, 'completed', read.error);
    for (const task of checked) {
      const done = await stack.api.waitForTask(task.id, 60_000);
      assert.equal(done.status, 'completed', JSON.stringify(done));
      assert.equal(trace(done).length, 2, 'the first answer was checked and refused');
      assert.equal(done.output.output.year, 1);
    }
    assert.notEqual((await handle.describe()).runId, firstRun, 'the agent continued as new meanwhile');
  });

  it('a routed task carries its checks to the agent the route picks', async () => {
    const a = await agent('Router target', { capabilities: ['towers'] });
    const res = await stack.api.post('/api/v1/tasks', {
      route: { capabilities: ['towers'] },
      title: 'Which city?',
      acceptanceCriteria: 'Mentions "Paris".',
      input: { script: [{ answer: 'Lyon.' }, { answer: 'Paris.' }] },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.agentId, a.id);
    const done = await stack.api.waitForTask(res.body.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(trace(done).length, 2);
  });

  it('refuses checks that cannot work with a 400 naming the field, and creates nothing', async () => {
    const a = await agent('Refusals');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ expectedOutput: { type: 'strin' } }, /expectedOutput: not a usable JSON Schema/],
      [{ expectedOutput: { type: 'string', pattern: '(a+)+$' } }, /expectedOutput: .*may backtrack catastrophically/],
      [{ expectedOutput: { enum: ['x'.repeat(17_000)] } }, /expectedOutput: at most 16384 characters/],
      [
        { maxValidationAttempts: 2 },
        /maxValidationAttempts: maxValidationAttempts needs expectedOutput or acceptanceCriteria/,
      ],
      [{ acceptanceCriteria: '   ' }, /acceptanceCriteria/],
      [{ acceptanceCriteria: 'ok', maxValidationAttempts: 11 }, /maxValidationAttempts/],
      [{ expectedOutput: 'a string' }, /expectedOutput/],
    ];
    for (const [extra, message] of cases) {
      const res = await stack.api.post('/api/v1/tasks', { agentId: a.id, title: 'refused', ...extra });
      assert.equal(res.status, 400, `${JSON.stringify(extra)} → ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'validation_failed');
      assert.match(res.body.error.message, message);
    }
    const rows = await stack.db.query('SELECT count(*)::int AS n FROM tasks WHERE agent_id = $1', [a.id]);
    assert.equal(rows.rows[0].n, 0);
  });
});
