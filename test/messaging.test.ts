import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { agentWorkflowId } from '../contract/definitions';
import { startFakeOpenAi, type FakeOpenAiServer, type RecordedRequest } from './helpers/fake-openai-server';
import { startStack, testConfig, waitFor, type TestStack } from './helpers/stack';

/**
 * Messaging between agents through the API on the real stack: status messages reach the recipient's next
 * model call and are marked read; requests become goals whose answers come back as responses; handoffs move
 * a task; topics reach their subscribers only; the message lists; refusals for unknown, archived and
 * other organisations' agents. The offline provider's scripts drive the tool calls; a fake OpenAI server
 * shows what a recipient's model was sent.
 */
describe('messaging between agents', () => {
  let stack: TestStack;
  let openai: FakeOpenAiServer;

  before(async () => {
    openai = await startFakeOpenAi();
    stack = await startStack(
      testConfig({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: openai.url, PRIORITY_SCORING: 'off' }),
    );
  });
  after(async () => {
    await stack?.stop();
    await openai?.close();
  });

  /** An agent of the default organisation on the offline provider (the scripts drive it), unless told otherwise. */
  const agent = (body: Record<string, unknown>) => stack.api.createAgent({ provider: 'offline', ...body });

  const toolResults = (task: any) =>
    task.reasoningTrace.filter((d: any) => d.decisionType === 'tool_call' || d.decisionType === 'delegate');

  const runScript = async (agentId: string, title: string, script: unknown[]) =>
    stack.api.waitForTask((await stack.api.createTask({ agentId, title, input: { script } })).id);

  const messagesOf = async (agentId: string, direction: 'in' | 'out', api = stack.api) => {
    const res = await api.get(`/api/v1/agents/${agentId}/messages?direction=${direction}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.messages as any[];
  };

  const live = async (agentId: string) => (await stack.api.get(`/api/v1/agents/${agentId}`)).body.live;

  const userTurns = (request: RecordedRequest) =>
    ((request.body as any).messages as any[]).filter((m) => m.role === 'user').map((m) => String(m.content));

  it("a status message reaches the recipient's next model call and is then read", async () => {
    const sender = await agent({ name: 'Reporter', objective: 'Tell', allowedTools: ['send_message'] });
    const receiver = await agent({
      name: 'Listener',
      objective: 'Listen',
      provider: 'openai',
      model: 'gpt-test',
    });
    const sent = await runScript(sender.id, 'tell', [
      { call: 'send_message', args: { toAgentId: receiver.id, content: 'the build is green' } },
      { answer: 'sent' },
    ]);
    const { messageId, delivered, type } = toolResults(sent)[0].result;
    assert.equal(delivered, true);
    assert.equal(type, 'status');

    // In the recipient's inbox (its state query and the Web UI), not read yet.
    await waitFor(async () => (await live(receiver.id))?.unreadMessages === 1, 'the unread message');
    const metadata = await stack.client.workflow
      .getHandle(agentWorkflowId(receiver.id))
      .query<{ currentDetails: string }>('__temporal_workflow_metadata');
    assert.match(
      metadata.currentDetails,
      /\*\*1 unread message\(s\)\*\*:\n- status from agent [0-9a-f-]{36}: the build is green/,
    );
    const [before] = await messagesOf(receiver.id, 'in');
    assert.equal(before.id, messageId);
    assert.equal(before.status, 'delivered');
    assert.equal(before.fromAgentId, sender.id);
    assert.equal(before.type, 'status');
    assert.deepEqual(
      (await messagesOf(sender.id, 'out')).map((m) => m.id),
      [messageId],
    );

    openai.enqueue({ kind: 'completion', content: 'noted the green build' });
    const seen = await stack.api.waitForTask(
      (await stack.api.createTask({ agentId: receiver.id, title: 'check in' })).id,
    );
    assert.equal(seen.status, 'completed', JSON.stringify(seen));
    assert.equal(seen.output.answer, 'noted the green build');
    const prompt = userTurns(openai.requests.at(-1)!);
    const section = prompt.find((turn) => turn.startsWith('Messages received:'));
    assert.ok(section, `no "Messages received" turn in ${JSON.stringify(prompt)}`);
    assert.match(section, /the build is green/);
    assert.ok(section.includes(sender.id) && section.includes(messageId), section);

    const [after] = await waitFor(async () => {
      const rows = await messagesOf(receiver.id, 'in');
      return rows[0]?.status === 'read' ? rows : undefined;
    }, 'the message to be read');
    assert.ok(after.readAt);
    assert.equal((await live(receiver.id)).unreadMessages, 0);

    // Shown once: the next call does not see it again.
    openai.enqueue({ kind: 'completion', content: 'nothing new' });
    await stack.api.waitForTask((await stack.api.createTask({ agentId: receiver.id, title: 'again' })).id);
    assert.ok(!userTurns(openai.requests.at(-1)!).some((turn) => turn.startsWith('Messages received:')));
  });

  it("a request becomes the recipient's goal and its answer comes back as the correlated response", async () => {
    const asker = await agent({
      name: 'Asker',
      objective: 'Ask',
      allowedTools: ['send_message', 'await_response'],
    });
    const expert = await agent({ name: 'Expert', objective: 'Answer questions' });
    const done = await runScript(asker.id, 'ask the expert', [
      { call: 'send_message', args: { toAgentId: expert.id, type: 'request', content: 'What is the build status?' } },
      { call: 'await_response', args: { timeoutSeconds: 60 } },
      { answer: 'got the answer' },
    ]);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const [request, awaited] = toolResults(done);
    assert.equal(request.decisionType, 'delegate');
    const requestId = request.result.messageId;

    // The request ran as the expert's goal of type "message".
    const goal = await stack.api.waitForTask(request.result.taskId);
    assert.equal(goal.agentId, expert.id);
    assert.equal(goal.taskType, 'message');
    assert.equal(goal.title, 'What is the build status?');
    assert.equal(goal.status, 'completed');

    // await_response waited for the response and answered it.
    assert.equal(awaited.result.messageId, requestId);
    assert.equal(awaited.result.response.fromAgentId, expert.id);
    assert.equal(awaited.result.response.content, goal.output.answer);

    const [response] = await messagesOf(expert.id, 'out');
    assert.equal(response.type, 'response');
    assert.equal(response.replyTo, requestId);
    assert.equal(response.toAgentId, asker.id);
    assert.equal(response.content, goal.output.answer);
    // The request was read by the goal that answered it; the response by await_response.
    const [requestRow] = await messagesOf(expert.id, 'in');
    assert.equal(requestRow.id, requestId);
    assert.equal(requestRow.type, 'request');
    assert.equal(requestRow.status, 'read');
    await waitFor(
      async () => (await messagesOf(asker.id, 'in')).find((m) => m.id === response.id)?.status === 'read',
      'the response to be read',
    );
    assert.equal((await live(asker.id)).unreadMessages, 0);
  });

  it('await_response waits durably for the response, and gives up at its timeout', async () => {
    const asker = await agent({ name: 'Waiter', objective: 'Ask', allowedTools: ['send_message', 'await_response'] });
    const busy = await agent({ name: 'Busy', objective: 'Answer later' });
    assert.equal((await stack.api.post(`/api/v1/agents/${busy.id}/pause`)).status, 200);
    const ask = (timeoutSeconds: number) => [
      { call: 'send_message', args: { toAgentId: busy.id, type: 'request', content: `ready? (${timeoutSeconds})` } },
      { call: 'await_response', args: { timeoutSeconds } },
      { answer: 'done waiting' },
    ];

    // The recipient is paused: no response within a second.
    const timedOut = await runScript(asker.id, 'ask briefly', ask(1));
    assert.equal(timedOut.status, 'completed', JSON.stringify(timedOut));
    assert.equal(toolResults(timedOut)[1].result.response, null);

    // Waiting long: the task stays open until the recipient, resumed, answers.
    const waiting = await stack.api.createTask({
      agentId: asker.id,
      title: 'ask patiently',
      input: { script: ask(120) },
    });
    await waitFor(async () => (await messagesOf(busy.id, 'in')).length === 2, 'the second request');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const open = (await stack.api.get(`/api/v1/tasks/${waiting.id}`)).body;
    assert.ok(!['completed', 'failed', 'cancelled'].includes(open.status), JSON.stringify(open));
    assert.equal((await stack.api.post(`/api/v1/agents/${busy.id}/resume`)).status, 200);
    const answered = await stack.api.waitForTask(waiting.id);
    assert.equal(answered.status, 'completed', JSON.stringify(answered));
    const awaited = toolResults(answered)[1].result;
    assert.equal(awaited.response.fromAgentId, busy.id);
    assert.match(awaited.response.content, /ready\? \(120\)/);
  });

  it("a handoff moves the task with its context to the recipient and ends the sender's task", async () => {
    const first = await agent({ name: 'Triage', objective: 'Route', allowedTools: ['send_message'] });
    const second = await agent({ name: 'Specialist', objective: 'Resolve' });
    const done = await runScript(first.id, 'resolve ticket 42', [
      { call: 'send_message', args: { toAgentId: second.id, type: 'handoff', content: 'needs a specialist' } },
      { answer: 'must not be reached' },
    ]);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.steps, 1);
    const { handedOffTo } = done.output;
    assert.equal(handedOffTo.agentId, second.id);

    const moved = await stack.api.waitForTask(handedOffTo.taskId);
    assert.equal(moved.agentId, second.id);
    assert.equal(moved.title, 'resolve ticket 42');
    assert.equal(moved.taskType, 'handoff');
    assert.equal(moved.parentTaskId, done.id);
    assert.equal(moved.input.handoff.fromTaskId, done.id);
    assert.equal(moved.input.handoff.note, 'needs a specialist');
    assert.ok(Array.isArray(moved.input.context.script));
    assert.equal(moved.status, 'completed');
    const [row] = await messagesOf(second.id, 'in');
    assert.equal(row.type, 'handoff');
  });

  it('publish reaches the subscribers of the topic only', async () => {
    const publisher = await agent({
      name: 'Publisher',
      objective: 'Announce',
      allowedTools: ['subscribe', 'unsubscribe', 'publish'],
    });
    const [a, b, notSubscribed, leaver] = await Promise.all(
      ['A', 'B', 'C', 'D'].map((name) => agent({ name, objective: 'Follow builds' })),
    );
    const topic = `builds-${randomUUID().slice(0, 8)}`;
    for (const member of [a, b, leaver]) {
      const res = await stack.api.post(`/api/v1/topics/${topic}/subscribers`, { agentId: member.id });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    assert.equal((await stack.api.request('DELETE', `/api/v1/topics/${topic}/subscribers/${leaver.id}`)).status, 204);
    assert.equal((await stack.api.request('DELETE', `/api/v1/topics/${topic}/subscribers/${leaver.id}`)).status, 404);
    assert.equal((await stack.api.post(`/api/v1/topics/${topic}/subscribers`, { agentId: 'nope' })).status, 400);
    assert.equal((await stack.api.post(`/api/v1/topics/${topic}/subscribers`, { agentId: randomUUID() })).status, 404);

    const done = await runScript(publisher.id, 'announce', [
      { call: 'subscribe', args: { topic } },
      { call: 'publish', args: { topic, content: 'deploy finished' } },
      { answer: 'announced' },
    ]);
    const [, published] = toolResults(done);
    assert.equal(published.result.delivered, 2);
    assert.deepEqual(published.result.messages.map((m: any) => m.toAgentId).sort(), [a.id, b.id].sort());
    const subscribers = (await stack.api.get(`/api/v1/topics/${topic}/subscribers`)).body.subscribers;
    assert.deepEqual([...subscribers].sort(), [a.id, b.id, publisher.id].sort());

    for (const member of [a, b]) {
      const [message] = await messagesOf(member.id, 'in');
      assert.equal(message.topic, topic);
      assert.equal(message.content, 'deploy finished');
      assert.equal(message.fromAgentId, publisher.id);
      await waitFor(async () => (await live(member.id))?.unreadMessages === 1, `${member.name}'s inbox`);
    }
    for (const member of [notSubscribed, leaver]) assert.deepEqual(await messagesOf(member.id, 'in'), []);
    assert.equal((await messagesOf(publisher.id, 'out')).length, 2);
  });

  it('lists page, and bad queries are refused', async () => {
    const sender = await agent({ name: 'Chatty', objective: 'Talk', allowedTools: ['send_message'] });
    const receiver = await agent({ name: 'Quiet', objective: 'Listen' });
    await runScript(sender.id, 'talk', [
      { call: 'send_message', args: { toAgentId: receiver.id, content: 'one' } },
      { call: 'send_message', args: { toAgentId: receiver.id, content: 'two' } },
      { answer: 'done' },
    ]);
    const all = await messagesOf(receiver.id, 'in');
    assert.deepEqual(
      all.map((m) => m.content),
      ['two', 'one'],
    );
    const page = await stack.api.get(`/api/v1/agents/${receiver.id}/messages?limit=1&offset=1`);
    assert.deepEqual(
      page.body.messages.map((m: any) => m.content),
      ['one'],
    );
    assert.equal((await stack.api.get(`/api/v1/agents/${receiver.id}/messages?direction=sideways`)).status, 400);
    assert.equal((await stack.api.get(`/api/v1/agents/${randomUUID()}/messages`)).status, 404);
  });

  it('unknown, archived and self recipients are clear tool errors', async () => {
    const sender = await agent({ name: 'Caller', objective: 'Call', allowedTools: ['send_message'] });
    const gone = await agent({ name: 'Gone', objective: 'Leave' });
    assert.equal((await stack.api.post(`/api/v1/agents/${gone.id}/archive`)).status, 200);
    const unknown = randomUUID();
    const done = await runScript(sender.id, 'call', [
      { call: 'send_message', args: { toAgentId: unknown, content: 'hello?' } },
      { call: 'send_message', args: { toAgentId: gone.id, content: 'hello?' } },
      { call: 'send_message', args: { toAgentId: sender.id, content: 'hello me' } },
      { answer: 'nobody there' },
    ]);
    const [first, second, third] = toolResults(done);
    assert.match(first.result.error, new RegExp(`no agent ${unknown} in this organisation`));
    assert.match(second.result.error, /is archived and receives no messages/);
    assert.match(third.result.error, /cannot send a message to itself/);
    assert.deepEqual(await messagesOf(sender.id, 'out'), []);
  });

  it("other organisations' agents do not exist", async () => {
    const other = await stack.clientForOrg(`org-${randomUUID().slice(0, 8)}`);
    const outsider = await other.createAgent({
      name: 'Outsider',
      objective: 'Pry',
      allowedTools: ['send_message'],
      provider: 'offline',
    });
    const insider = await agent({ name: 'Insider', objective: 'Work' });
    const done = await other.waitForTask(
      (
        await other.createTask({
          agentId: outsider.id,
          title: 'pry',
          input: { script: [{ call: 'send_message', args: { toAgentId: insider.id, content: 'hi' } }] },
        })
      ).id,
    );
    assert.match(toolResults(done)[0].result.error, /no agent .* in this organisation/);
    assert.equal((await other.get(`/api/v1/agents/${insider.id}/messages`)).status, 404);
    assert.equal((await other.post('/api/v1/topics/t/subscribers', { agentId: insider.id })).status, 404);
    assert.deepEqual(await messagesOf(insider.id, 'in'), []);
  });
});
