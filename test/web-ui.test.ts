/**
 * The Temporal Web UI as a person sees it, in headless Chromium: the dev server's own UI lists an agent's
 * workflows by the AgentId search attribute, and a task waiting for approval shows its summary and its
 * current details. Screenshots land in test-output/web-ui/.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { agentWorkflowId } from '../contract/definitions';
import { launchChromium, type ChromiumSession } from './helpers/browser';
import { startApi, startWorker, testConfig, waitFor, type TestStack } from './helpers/stack';

/** How long the UI may take to show something (visibility lags a little behind a workflow start). */
const UI_TIMEOUT_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The UI's markdown renderer turns straight quotes into typographic ones; compare text without that. */
const plainQuotes = (text: string) =>
  text
    .replace(/[\u201C\u201D\u201E]/g, '"')
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/\s+/g, ' ')
    .trim();

/** Workflow ids listed in the rows of the workflow table. */
async function listedWorkflowIds(page: Page): Promise<string[]> {
  const rows = await page.locator('table tbody tr').allInnerTexts();
  return rows.flatMap((row) => row.match(/\b(?:agent|task)-[0-9a-f-]{36}\b/g)?.slice(0, 1) ?? []);
}

/**
 * The text of the markdown rendered under a heading of the User Metadata tab ("Summary", "Current Details"). The UI
 * renders markdown in an iframe; the one that belongs to a heading is in the nearest block holding that heading
 * alone, so a section showing "No summary available" has none and this fails rather than read a neighbour's.
 */
async function markdownText(page: Page, heading: string, timeoutMs = 5_000): Promise<string> {
  const iframe = page
    .locator('h3', { hasText: new RegExp(`^\\s*${heading}\\s*$`) })
    .locator('xpath=ancestor::div[count(.//h3)=1][.//iframe][1]//iframe');
  const frame = await (await iframe.elementHandle({ timeout: timeoutMs }))!.contentFrame();
  if (!frame) throw new Error(`the iframe under "${heading}" has no document`);
  return plainQuotes(await frame.locator('body').innerText({ timeout: timeoutMs }));
}

describe('Temporal Web UI (headless Chromium)', { timeout: 240_000 }, () => {
  let stack: TestStack;
  let worker: { stop(): Promise<void> } | undefined;
  let chrome: ChromiumSession | undefined;
  let launching: Promise<ChromiumSession> | undefined;
  const uiUrl = process.env.TEMPORAL_UI_URL?.replace(/\/+$/, '');
  const outDir = path.join(process.env.TEST_OUTPUT_DIR ?? path.resolve(__dirname, '../test-output'), 'web-ui');

  const agentName = 'Web UI reviewer';
  const taskTitle = 'draft the release note';
  let agent: { id: string };
  let other: { id: string };
  let task: { id: string };
  let otherTask: { id: string };
  let approval: { id: string } | undefined;

  /** The browser page, launched on first use so that each browser check fails with the reason when Chromium cannot start. */
  const openPage = async (): Promise<Page> => {
    launching ??= launchChromium().then((session) => {
      chrome = session;
      session.page.setDefaultTimeout(30_000);
      session.page.setDefaultNavigationTimeout(60_000);
      return session;
    });
    return (await launching).page;
  };
  const page = () => chrome!.page;
  const screenshot = async (name: string) => {
    const file = path.join(outDir, `${name}.png`);
    await page().screenshot({ path: file, fullPage: true });
    return file;
  };
  /** Runs one step of a browser check; on failure keeps a screenshot of what the page showed. */
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      const shot = chrome ? await screenshot(`failed-${name}`).catch(() => undefined) : undefined;
      if (shot && err instanceof Error) err.message += `\n(screenshot of the page: ${shot}; URL ${page().url()})`;
      throw err;
    }
  };

  before(async () => {
    assert.ok(
      uiUrl,
      'TEMPORAL_UI_URL is not set: run this through test/run.ts, which starts the dev server with its Web UI',
    );
    fs.mkdirSync(outDir, { recursive: true });
    const config = testConfig();
    stack = await startApi(config);
    worker = await startWorker(config);

    agent = await stack.api.createAgent({
      name: agentName,
      objective: 'Review drafts before they are stored',
      autonomy: 'copilot',
    });
    other = await stack.api.createAgent({
      name: 'Bystander',
      objective: 'Be somewhere else in the list',
      autonomy: 'autopilot',
    });
    const script = (key: string) => [
      { call: 'memory_write', args: { key, op: 'set', value: 'v1' } },
      { answer: `stored ${key}` },
    ];
    task = await stack.api.createTask({
      agentId: agent.id,
      title: taskTitle,
      input: { script: script('release-note') },
    });
    otherTask = await stack.api.createTask({
      agentId: other.id,
      title: 'something unrelated',
      input: { script: script('other') },
    });
    approval = await waitFor(async () => {
      const res = await stack.api.get(`/api/v1/approvals?status=pending&agentId=${agent.id}`);
      return res.body.approvals.find((a: { taskId: string }) => a.taskId === task.id);
    }, 'the approval request');
    // The other agent's workflows exist in visibility too, so their absence from the filtered list means something.
    await waitFor(async () => {
      const ids: string[] = [];
      for await (const wf of stack.client.workflow.list({ query: `AgentId = "${other.id}"` })) ids.push(wf.workflowId);
      return ids.includes(agentWorkflowId(other.id));
    }, "the other agent's workflows in visibility");
  });

  after(async () => {
    await launching?.catch(() => undefined);
    await chrome?.close();
    await worker?.stop();
    await stack?.stop();
  });

  it('lists the agent workflow by the AgentId search attribute, and no other agent', async (t) => {
    await openPage();
    const started = Date.now();
    const query = `AgentId = "${agent.id}"`;
    const url = `${uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`;
    const expected = [agentWorkflowId(agent.id)];
    const ids = await step('list', async () => {
      let loads = 0;
      let seen: string[] = [];
      const deadline = Date.now() + UI_TIMEOUT_MS;
      // Visibility may trail the workflows by a moment: reload until the row is there.
      while (Date.now() < deadline) {
        loads++;
        await page().goto(url, { waitUntil: 'domcontentloaded' });
        try {
          await page()
            .getByRole('link', { name: agentWorkflowId(agent.id), exact: true })
            .waitFor({ timeout: 10_000 });
        } catch {
          seen = await listedWorkflowIds(page());
          continue;
        }
        t.diagnostic(`list showed the agent's workflow after ${Date.now() - started} ms (${loads} page load(s))`);
        return listedWorkflowIds(page());
      }
      throw new Error(
        `the list filtered by ${query} did not show ${expected.join(' and ')} within ${UI_TIMEOUT_MS} ms (rows: ${seen.join(', ') || 'none'})`,
      );
    });
    await screenshot('workflow-list');
    assert.deepEqual([...ids].sort(), expected, 'exactly the agent is listed (its goals run inside its workflow)');
    const text = await page().locator('body').innerText();
    assert.ok(!text.includes(other.id), "the other agent's workflow is not listed");
    assert.ok(!text.includes(otherTask.id), "the other agent's task is not listed");
    // The filter is really applied in the UI (shown as a chip / in the query), not just in the URL.
    assert.ok(text.includes(agent.id), 'the AgentId filter is shown');
  });

  it("shows the agent's summary and its current details (its task waiting for approval)", async (t) => {
    await openPage();
    const started = Date.now();
    await step('workflow-page', async () => {
      await page().goto(`${uiUrl}/namespaces/default/workflows/${agentWorkflowId(agent.id)}`, {
        waitUntil: 'domcontentloaded',
      });
      // The page header names the workflow; the run's page long-polls its history, so wait for elements, not the network.
      await page()
        .getByRole('heading', { name: agentWorkflowId(agent.id) })
        .first()
        .waitFor({ timeout: UI_TIMEOUT_MS });
      t.diagnostic(`workflow page header shown after ${Date.now() - started} ms`);
      await page().getByRole('tab', { name: 'User Metadata' }).click();
      await page().waitForURL(/\/user-metadata$/);
    });

    const expectedSummary = `Agent ${agentName} (general, copilot)`;
    const summary = await step('summary', async () => {
      const deadline = Date.now() + UI_TIMEOUT_MS;
      let shown: string | Error = '';
      while (Date.now() < deadline) {
        shown = await markdownText(page(), 'Summary').catch((err: Error) => err);
        if (shown === expectedSummary) return shown;
        await sleep(500);
      }
      throw new Error(
        `the Summary section never showed ${JSON.stringify(expectedSummary)}; it shows ${shown instanceof Error ? `nothing (${shown.message.split('\n')[0]})` : JSON.stringify(shown)}`,
      );
    });
    assert.equal(summary, expectedSummary);
    t.diagnostic(`summary shown after ${Date.now() - started} ms`);

    // Current details come from the workflow's metadata query, fetched once on load; "R" fetches it again.
    const details = await step('current-details', async () => {
      const deadline = Date.now() + UI_TIMEOUT_MS;
      let shown: string | Error = '';
      while (Date.now() < deadline) {
        shown = await markdownText(page(), 'Current Details').catch((err: Error) => err);
        if (typeof shown === 'string' && shown.includes('waiting for approval of memory_write')) return shown;
        await sleep(1_000);
        await page().keyboard.press('r');
      }
      throw new Error(
        `Current Details never said "waiting for approval of memory_write"; it shows ${shown instanceof Error ? `nothing (${shown.message.split('\n')[0]})` : JSON.stringify(shown)}`,
      );
    });
    assert.match(
      details,
      new RegExp(`^${agentName} · waiting for approval of memory_write \\(request ${approval!.id}, expires \\S+\\)$`),
    );
    t.diagnostic(`current details shown after ${Date.now() - started} ms`);
    await screenshot('agent-workflow');
  });

  it('approving through the API lets the task complete', async () => {
    const res = await stack.api.post(`/api/v1/approvals/${approval!.id}/approve`, { decidedBy: 'web-ui-test' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const done = await stack.api.waitForTask(task.id);
    assert.equal(done.status, 'completed');
  });
});
