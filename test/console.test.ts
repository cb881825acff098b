/**
 * The web console at /console as a person uses it, in headless Chromium against the real API and a worker:
 * sign in (a wrong key is refused), see a copilot agent's approval request appear, approve it with edited
 * arguments checked against the tool's schema and watch its task complete on the task page, reject another,
 * lose a decision race (409 and the winner shown), chat with tokens arriving before the answer ends, pause and
 * archive agents, crews and governance; another organisation's key sees none of it. Every page passes axe-core
 * with no serious or critical violation at 1280 px and at phone width. Screenshots land in test-output/console/.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Locator, Page } from 'playwright-core';
import { buildConsole } from '../scripts/console-build';
import { launchChromium, type ChromiumSession } from './helpers/browser';
import { startApi, startWorker, testConfig, waitFor, type ApiClient, type TestStack } from './helpers/stack';

const UI_TIMEOUT_MS = 30_000;
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

describe('web console (headless Chromium)', { timeout: 300_000 }, () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> } | undefined;
  let chrome: ChromiumSession | undefined;
  let api: ApiClient;
  let otherOrg: ApiClient;
  let consoleUrl: string;
  const outDir = path.join(process.env.TEST_OUTPUT_DIR ?? path.resolve(__dirname, '../test-output'), 'console');

  let agent: { id: string; name: string };
  let approveTask: { id: string };
  let approval: { id: string };
  let rejectTask: { id: string };
  let rejected: { id: string };

  const page = (): Page => chrome!.page;
  const screenshot = async (name: string) => {
    await page().screenshot({ path: path.join(outDir, `${name}.png`), fullPage: true });
  };
  /** Runs one browser step; on failure keeps a screenshot of what the page showed. */
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      const shot = path.join(outDir, `failed-${name}.png`);
      const saved = await page()
        .screenshot({ path: shot, fullPage: true })
        .then(() => true)
        .catch(() => false);
      if (saved && err instanceof Error) err.message += `\n(screenshot: ${shot}; URL ${page().url()})`;
      throw err;
    }
  };
  /** Runs axe-core on the current page; fails on any serious or critical violation. */
  const checkAccessibility = async (name: string) => {
    // Evaluated through the DevTools protocol, so the page's own CSP (no inline scripts) stays in force.
    await page().evaluate(AXE_SOURCE);
    const violations = await page().evaluate<AxeViolation[]>(
      'axe.run().then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) })))',
    );
    const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(
      bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
      [],
      `axe-core found serious violations on the ${name} page`,
    );
  };
  const go = async (hash: string, heading: string | RegExp) => {
    await page().goto(`${consoleUrl}${hash}`, { waitUntil: 'domcontentloaded' });
    await page().getByRole('heading', { level: 1, name: heading }).waitFor({ timeout: UI_TIMEOUT_MS });
  };
  const signIn = async (key: string) => {
    await page().goto(consoleUrl, { waitUntil: 'domcontentloaded' });
    const field = page().getByLabel('API key');
    await field.fill(key);
    // By keyboard: Enter submits the form.
    await field.press('Enter');
  };
  const signOut = async () => {
    await page().getByRole('button', { name: 'Sign out' }).click();
    await page().getByLabel('API key').waitFor();
  };
  const card = (approvalId: string): Locator => page().locator(`li[data-approval="${approvalId}"]`);
  const pendingApproval = async (taskId: string) =>
    waitFor(async () => {
      const res = await api.get(`/api/v1/approvals?status=pending&taskId=${taskId}`);
      return res.body.approvals[0] as { id: string } | undefined;
    }, `the approval request of task ${taskId}`);
  const script = (key: string) => [
    { call: 'memory_write', args: { key, op: 'set', value: 'proposed' } },
    { answer: `stored ${key}` },
  ];

  before(async () => {
    fs.mkdirSync(outDir, { recursive: true });
    await buildConsole();
    const config = testConfig();
    stack = await startApi(config);
    worker = await startWorker(config);
    // An organisation of its own, so its inbox holds exactly this file's requests.
    api = await stack.clientForOrg(`console-${randomUUID().slice(0, 8)}`);
    otherOrg = await stack.clientForOrg(`console-other-${randomUUID().slice(0, 8)}`);
    agent = await api.createAgent({
      name: 'Console reviewer',
      objective: 'Store release notes once a person agrees',
      autonomy: 'copilot',
      allowedTools: ['memory_read', 'memory_write'],
    });
    consoleUrl = `${api.baseUrl}/console/`;
    chrome = await launchChromium({ viewport: DESKTOP });
    page().setDefaultTimeout(UI_TIMEOUT_MS);
  });

  after(async () => {
    await chrome?.close();
    await worker?.stop();
    await stack?.stop();
  });

  it('is served by the API: the page, its local assets, a same-origin-only CSP and its config', async () => {
    const res = await fetch(consoleUrl);
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(html, /<script type="module" src="assets\/app\.js"><\/script>/);
    assert.doesNotMatch(html, /https?:\/\//, 'no asset comes from another origin');
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self';/);
    assert.match(csp, /style-src 'self';/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const js = await fetch(`${consoleUrl}assets/app.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    const redirect = await fetch(`${api.baseUrl}/console`, { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get('location'), '/console/');
    const config = (await (await fetch(`${consoleUrl}config.json`)).json()) as Record<string, string>;
    assert.equal(config.namespace, stack.config.TEMPORAL_NAMESPACE);
    assert.equal((await fetch(`${consoleUrl}assets/missing.js`)).status, 404);
  });

  it('refuses a wrong key with a clear message', async () => {
    await step('wrong-key', async () => {
      await signIn('tao_not_a_real_key_0000000000');
      const alert = page().getByRole('alert');
      await alert.waitFor();
      assert.match(await alert.innerText(), /API key was refused/);
      assert.equal(await page().getByRole('button', { name: 'Sign out' }).count(), 0, 'not signed in');
    });
    await screenshot('sign-in-refused');
    await checkAccessibility('sign-in');
  });

  it("signs in, sees a copilot agent's request appear, approves it with edited arguments and watches the task complete", async (t) => {
    await step('sign-in', async () => {
      await signIn(api.apiKey!);
      // Nothing is pending yet, so the first page is the agents list.
      await page().getByRole('heading', { level: 1, name: 'Agents' }).waitFor();
      await page().locator(`tr[data-agent="${agent.id}"]`).waitFor();
    });
    assert.equal(
      await page().evaluate<number>('Object.keys(localStorage).length'),
      0,
      'the key is not kept beyond the tab (sessionStorage only)',
    );
    await screenshot('agents');
    await checkAccessibility('agents');

    await step('approval-appears', async () => {
      await page().getByRole('link', { name: 'Approvals' }).click();
      await page().getByRole('heading', { level: 1, name: 'Approvals' }).waitFor();
      approveTask = await api.createTask({
        agentId: agent.id,
        title: 'store the release note',
        input: { script: script('release-note') },
      });
      approval = await pendingApproval(approveTask.id);
      const started = Date.now();
      // No reload: the inbox shows the new request by itself.
      await card(approval.id).waitFor();
      t.diagnostic(`request shown ${Date.now() - started} ms after it was recorded`);
    });
    const text = await card(approval.id).innerText();
    assert.match(text, /Console reviewer/);
    assert.match(text, /memory_write/);
    assert.match(text, /"proposed"/);
    assert.match(text, /expires in \d+h \d{2}m/);
    await screenshot('approvals-pending');
    await checkAccessibility('approvals');

    await step('edit', async () => {
      const c = card(approval.id);
      await c.getByRole('button', { name: 'Approve with edits…' }).click();
      const editor = c.getByLabel(/Edited arguments/);
      const send = c.getByRole('button', { name: 'Approve edited call' });
      await editor.fill('{"key": "release-note", ');
      await c.getByText(/not valid JSON/).waitFor();
      assert.equal(await send.isDisabled(), true, 'invalid JSON cannot be sent');
      await editor.fill('{"key": "", "op": "replace"}');
      await c.getByText(/needs at least 1 character/).waitFor();
      await c.getByText(/must be one of "set", "increment", "append", "merge"/).waitFor();
      assert.equal(await send.isDisabled(), true, 'arguments that break the schema cannot be sent');
      await editor.fill('{"key": "release-note", "op": "set", "value": "edited in the console"}');
      await c.getByText("The arguments match the tool's schema.").waitFor();
      await screenshot('approval-edit');
      await send.click();
      await page().getByRole('status').getByText('Approved: Console reviewer wants to call memory_write').waitFor();
      await card(approval.id).waitFor({ state: 'detached' });
    });
    const decided = await api.get(`/api/v1/approvals/${approval.id}`);
    assert.equal(decided.body.status, 'approved');
    assert.equal(decided.body.decidedBy, 'console');
    assert.deepEqual(decided.body.editedAction, { key: 'release-note', op: 'set', value: 'edited in the console' });

    await step('task-completes', async () => {
      await page().goto(`${consoleUrl}#/tasks/${approveTask.id}`);
      await page().getByRole('heading', { level: 1, name: 'store the release note' }).waitFor();
      // No reload: the page follows the task until it finishes.
      await page()
        .getByTestId('task-status')
        .getByText(/completed/i)
        .waitFor();
      await page().getByTestId('final-answer').waitFor();
    });
    const taskText = await page().locator('main').innerText();
    assert.match(taskText, /Final answer\s+\[offline\] stored release-note/);
    assert.match(taskText, /Approval of memory_write\s+approved/i);
    assert.match(taskText, /By console \(arguments edited\)/);
    assert.match(taskText, /edited in the console/, 'the tool call shows the edited arguments');
    const tokens = await page().getByTestId('task-tokens').innerText();
    assert.match(tokens, /^[1-9][\d,]* \(/, `tokens used are shown: ${tokens}`);
    const workflowLink = page().getByRole('link', { name: "The agent's workflow in the Temporal Web UI" });
    assert.match((await workflowLink.getAttribute('href')) ?? '', new RegExp(`/workflows/agent-${agent.id}$`));
    await screenshot('task');
    await checkAccessibility('task');
  });

  it('rejects another request with a reason, and lists both in the decided tab', async () => {
    rejectTask = await api.createTask({
      agentId: agent.id,
      title: 'overwrite the launch date',
      input: { script: script('launch-date') },
    });
    rejected = await pendingApproval(rejectTask.id);
    await step('reject', async () => {
      await go('#/approvals', 'Approvals');
      const c = card(rejected.id);
      await c.getByRole('button', { name: 'Reject…' }).click();
      await c.getByLabel(/Reason for rejecting/).fill('the date is not final');
      await c.getByRole('button', { name: 'Confirm reject' }).click();
      await page()
        .getByRole('status')
        .getByText(/^Rejected: /)
        .waitFor();
    });
    const row = await api.get(`/api/v1/approvals/${rejected.id}`);
    assert.equal(row.body.status, 'rejected');
    assert.equal(row.body.reason, 'the date is not final');
    const done = await api.waitForTask(rejectTask.id);
    assert.equal(done.status, 'completed', 'the agent carries on without the rejected call');

    await step('decided-tab', async () => {
      const tab = page().getByRole('tab', { name: 'Pending' });
      await tab.focus();
      // Arrow keys move between tabs.
      await page().keyboard.press('ArrowRight');
      await page().getByRole('tabpanel').locator(`li[data-approval="${rejected.id}"]`).waitFor();
      await page().getByRole('tabpanel').locator(`li[data-approval="${approval.id}"]`).waitFor();
    });
    const panel = await page().getByRole('tabpanel').innerText();
    assert.match(panel, /the date is not final/);
    await screenshot('approvals-decided');
    await checkAccessibility('approvals-decided');
  });

  it("shows the 409 and the winner's decision when someone else decided first", async () => {
    const raceTask = await api.createTask({
      agentId: agent.id,
      title: 'store the price list',
      input: { script: script('price-list') },
    });
    const raced = await pendingApproval(raceTask.id);
    await step('race', async () => {
      await go('#/approvals', 'Approvals');
      await page()
        .getByRole('tab', { name: /^Pending/ })
        .click();
      await card(raced.id).waitFor();
      // Another reviewer rejects it through the API while this page still shows it pending: the inbox's next
      // refresh is held back, as when a person clicks between someone else's decision and that refresh.
      const stale = await api.get('/api/v1/approvals?status=pending&limit=200');
      await page().route('**/api/v1/approvals?status=pending*', (route) => route.fulfill({ json: stale.body }));
      try {
        const other = await api.post(`/api/v1/approvals/${raced.id}/reject`, { decidedBy: 'other-reviewer' });
        assert.equal(other.status, 200, JSON.stringify(other.body));
        await card(raced.id).getByRole('button', { name: 'Approve', exact: true }).click();
        await card(raced.id)
          .getByRole('alert')
          .getByText(/Not applied \(409\)/)
          .waitFor();
      } finally {
        await page().unrouteAll();
      }
      // The outcome stays after the inbox refreshes without the request.
      await page().waitForTimeout(2_500);
      await card(raced.id)
        .getByRole('alert')
        .getByText(/Not applied \(409\)/)
        .waitFor();
    });
    const text = await card(raced.id).innerText();
    assert.match(text, /already rejected by other-reviewer/);
    assert.match(text, /The request is\s+rejected\s+by other-reviewer/i);
    await screenshot('approval-conflict');
    assert.equal((await api.get(`/api/v1/approvals/${raced.id}`)).body.status, 'rejected');
    await api.waitForTask(raceTask.id);
  });

  it('chats: tokens arrive before the answer ends, and the session history stays', async () => {
    await step('chat', async () => {
      await go(`#/chat/${agent.id}`, 'Chat');
      // Records the assistant bubble's text on every change, so the test sees what a person saw while it streamed.
      await page().evaluate(`
        window.chatSeen = [];
        new MutationObserver(() => {
          const bubble = [...document.querySelectorAll('li[data-role="assistant"]')].pop();
          if (bubble)
            window.chatSeen.push({
              streaming: bubble.getAttribute('data-streaming') === 'true',
              length: (bubble.textContent || '').replace(/^Agent: /, '').replace(/…$/, '').length,
            });
        }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
      `);
      await page().getByLabel('Message').fill('hello there, what can you do for the launch?');
      await page().keyboard.press('Control+Enter');
      await page().locator('li[data-role="assistant"]:not([data-streaming])').waitFor();
    });
    const answer = await page().locator('li[data-role="assistant"]').last().innerText();
    assert.match(answer, /\[offline\] You said: "hello there, what can you do for the launch\?"/);
    const seen = await page().evaluate<{ streaming: boolean; length: number }[]>('window.chatSeen');
    const finalLength = seen.at(-1)!.length;
    const partial = seen.filter((s) => s.streaming && s.length > 0 && s.length < finalLength);
    assert.ok(partial.length >= 3, `tokens arrived before the answer ended: ${JSON.stringify(seen.slice(0, 20))}`);
    await screenshot('chat');
    await checkAccessibility('chat');

    // The session is kept for the tab: coming back shows its history from the API.
    await go('#/agents', 'Agents');
    await go(`#/chat/${agent.id}`, 'Chat');
    await page().locator('li[data-role="user"]', { hasText: 'what can you do for the launch?' }).waitFor();
    await page().locator('li[data-role="assistant"]', { hasText: 'You said' }).waitFor();
  });

  it('an agent page pauses and resumes it; archiving asks first', async () => {
    const spare = await api.createAgent({ name: 'Spare helper', objective: 'Be archived', autonomy: 'autopilot' });
    await step('agent-page', async () => {
      await go(`#/agents/${agent.id}`, 'Console reviewer');
      await page().locator(`tr[data-task="${approveTask.id}"]`).waitFor();
      await page().getByRole('button', { name: 'Pause' }).click();
      await page()
        .getByRole('status')
        .getByText(/now PAUSED/)
        .waitFor();
      await page().getByRole('button', { name: 'Resume' }).waitFor();
    });
    assert.equal((await api.get(`/api/v1/agents/${agent.id}`)).body.status, 'PAUSED');
    await screenshot('agent');
    await checkAccessibility('agent');
    await page().getByRole('button', { name: 'Resume' }).click();
    await page().getByRole('button', { name: 'Pause' }).waitFor();
    assert.notEqual((await api.get(`/api/v1/agents/${agent.id}`)).body.status, 'PAUSED');

    await step('archive', async () => {
      await go(`#/agents/${spare.id}`, 'Spare helper');
      await page().getByRole('button', { name: 'Archive…' }).click();
      const dialog = page().getByRole('alertdialog');
      await dialog.getByText(/cannot be undone/).waitFor();
      // The safe choice has the focus. The dialog focuses it in an effect, after its text is painted.
      await page().waitForFunction("document.activeElement?.textContent === 'Keep it'", undefined, { timeout: 5000 });
      await dialog.getByRole('button', { name: 'Archive Spare helper' }).click();
      await page()
        .getByRole('status')
        .getByText(/now ARCHIVED/)
        .waitFor();
    });
    assert.equal((await api.get(`/api/v1/agents/${spare.id}`)).body.status, 'ARCHIVED');
  });

  it('shows crews with their members, and governance gauges', async () => {
    const crew = await api.post('/api/v1/crews', {
      name: 'Launch crew',
      goal: 'Prepare the launch',
      process: 'sequential',
      members: [{ agentId: agent.id, role: 'writer' }],
    });
    assert.equal(crew.status, 201, JSON.stringify(crew.body));
    await step('crews', async () => {
      await go('#/crews', 'Crews');
      await page().getByRole('link', { name: 'Launch crew' }).click();
      await page().getByRole('heading', { level: 1, name: 'Launch crew' }).waitFor();
      await page().getByRole('cell', { name: 'writer' }).waitFor();
    });
    await screenshot('crew');
    await checkAccessibility('crew');
    await step('governance', async () => {
      await go('#/governance', 'Governance');
      await page().locator('meter').first().waitFor();
    });
    assert.ok((await page().locator('meter').count()) >= 2, 'token budget and slot gauges');
    await page().getByText('Active agents').waitFor();
    await screenshot('governance');
    await checkAccessibility('governance');
  });

  it('works at phone width', async () => {
    await page().setViewportSize(PHONE);
    try {
      for (const [hash, heading, name] of [
        ['#/approvals', 'Approvals', 'approvals'],
        [`#/tasks/${approveTask.id}`, 'store the release note', 'task'],
        [`#/chat/${agent.id}`, 'Chat', 'chat'],
        [`#/agents/${agent.id}`, 'Console reviewer', 'agent'],
      ] as const) {
        await step(`phone-${name}`, () => go(hash, heading));
        await page().waitForTimeout(300);
        const overflow = await page().evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
        assert.ok(overflow <= 0, `the ${name} page fits ${PHONE.width} px (overflows by ${overflow} px)`);
        await screenshot(`phone-${name}`);
        await checkAccessibility(`${name} (phone)`);
      }
    } finally {
      await page().setViewportSize(DESKTOP);
    }
  });

  it("another organisation's key sees none of it", async () => {
    await step('other-org', async () => {
      await signOut();
      assert.equal(await page().evaluate<number>('sessionStorage.length'), 0, 'signing out forgets the key');
      await signIn(otherOrg.apiKey!);
      await page().getByRole('heading', { level: 1, name: 'Agents' }).waitFor();
      await page().getByText('No agents yet.').waitFor();
      await go('#/approvals', 'Approvals');
      await page().getByText('Nothing is waiting for a decision.').waitFor();
      await page().getByRole('tab', { name: 'Decided and expired' }).click();
      await page().getByText('No decided or expired requests yet.').waitFor();
      await page().goto(`${consoleUrl}#/tasks/${approveTask.id}`);
      await page().getByRole('alert').getByText(`no task with id "${approveTask.id}"`).waitFor();
    });
    await screenshot('other-org');
    const body = await page().locator('body').innerText();
    assert.ok(!body.includes('Console reviewer'));
  });
});
