/**
 * The guard against workflow changes that break running executions (docs/workflow-changes.md):
 *
 * - every recorded history (test/histories/*.json, written by test/histories/record.ts; HISTORIES_DIR
 *   replays another folder's recordings instead) and every old-shape fixture listed in the patch registry
 *   (workflows/patches.ts) replays with the current workflow code;
 * - the recordings cover every workflow type the worker registers;
 * - the registry, the docs and the code agree: the docs list exactly the registry's patches, every fixture
 *   exists and is of the old shape, every `patched()` id in workflows/ is registered and every registered
 *   id is used;
 * - an incompatible change to AgentWorkflow, CrewWorkflow or TaskWorkflow fails to replay their histories.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import type { temporal } from '@temporalio/proto';
import {
  bundleWorkflowCode,
  DefaultLogger,
  makeTelemetryFilterString,
  Runtime,
  Worker,
  type ReplayWorkerOptions,
} from '@temporalio/worker';
import ts from 'typescript';
import * as workflows from '../workflows';
import { PATCHES, type PatchEntry } from '../workflows/patches';
import { bundleWorkflows } from '../workers/bundle';
import { silentLogger } from './helpers/stack';

const ROOT = path.resolve(__dirname, '..');
/** Where record.ts writes the current recordings (top level only). */
const RECORDED = process.env.HISTORIES_DIR
  ? path.resolve(process.env.HISTORIES_DIR)
  : path.join(ROOT, 'test', 'histories');
const WORKFLOWS_DIR = path.join(ROOT, 'workflows');
const DOCS = path.join(ROOT, 'docs', 'workflow-changes.md');
const REGISTRY: Record<string, PatchEntry> = PATCHES;

// The incompatible-change test makes the SDK log every nondeterminism it finds; those are expected here.
Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } },
});

interface Recorded {
  /** The file name of a recording, or a fixture's path from the repository root. */
  workflowId: string;
  workflowType: string;
  history: temporal.api.history.v1.IHistory;
}

function readHistory(file: string, workflowId: string): Recorded {
  const history = historyFromJSON(JSON.parse(fs.readFileSync(file, 'utf8')));
  const workflowType = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
  assert.ok(workflowType, `${workflowId} starts with WorkflowExecutionStarted`);
  return { workflowId, workflowType, history };
}

/** The current recordings: the top-level *.json of the recordings folder (sub-folders are not read). */
function recordings(): Recorded[] {
  if (!fs.existsSync(RECORDED)) return [];
  return fs
    .readdirSync(RECORDED, { withFileTypes: true })
    .filter((f) => f.isFile() && f.name.endsWith('.json'))
    .map((f) => f.name)
    .sort()
    .map((name) => readHistory(path.join(RECORDED, name), name));
}

/** The old-shape fixtures of every registered patch, by path from the repository root. */
function fixtures(): Recorded[] {
  return Object.values(REGISTRY)
    .flatMap((entry) => entry.oldShapeFixtures)
    .map((fixture) => readHistory(path.join(ROOT, fixture), fixture));
}

/** Replays every history; collects failures instead of stopping at the first (runReplayHistories does not throw). */
async function replayAll(options: ReplayWorkerOptions, histories: Recorded[]) {
  const failures: { workflowId: string; error: string }[] = [];
  const replayed: string[] = [];
  for await (const result of Worker.runReplayHistories(options, histories)) {
    replayed.push(result.workflowId);
    if (result.error) {
      // Core's reason, e.g. `[TMPRL1100] Nondeterminism error: …`, without the wrapping it comes in.
      const message = result.error.message;
      const reason = /message: "((?:[^"\\]|\\.)*)"/.exec(message)?.[1] ?? message.split('\n')[0];
      failures.push({ workflowId: result.workflowId, error: `${result.error.name}: ${reason}` });
    }
  }
  return { replayed, failures };
}

/** Patch ids in a history's patch markers (`core_patch`, payload `{"id": …, "deprecated": …}`). */
function patchMarkers(history: temporal.api.history.v1.IHistory): string[] {
  return (history.events ?? []).flatMap((e) => {
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName !== 'core_patch') return [];
    return (marker.details?.['patch-data']?.payloads ?? []).map(
      (p) => (JSON.parse(Buffer.from(p.data!).toString()) as { id: string }).id,
    );
  });
}

const PATCH_FUNCTIONS = new Set(['patched', 'deprecatePatch']);

interface PatchCall {
  file: string;
  call: string;
  /** The patch id, or null when it cannot be read from the file. */
  id: string | null;
}

/** Every `patched(…)` and `deprecatePatch(…)` call in workflows/*.ts (see patchCallsIn). */
function patchCallsInWorkflows(): PatchCall[] {
  return fs
    .readdirSync(WORKFLOWS_DIR)
    .filter((f) => f.endsWith('.ts'))
    .flatMap((name) => patchCallsIn(`workflows/${name}`, fs.readFileSync(path.join(WORKFLOWS_DIR, name), 'utf8')));
}

/**
 * The `patched(…)` and `deprecatePatch(…)` calls in a source file (comments and strings are not code), with
 * the id each passes: a string literal, or a constant declared in the same file as `const X = 'id'`.
 * Anything else (another expression, the function passed around or renamed on import) has no id.
 */
function patchCallsIn(file: string, text: string): PatchCall[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const constants = new Map<string, string>();
  const found: ts.CallExpression[] = [];
  const others: ts.Identifier[] = [];
  const visit = (node: ts.Node): void => {
    if (
      ts.isVariableDeclaration(node) &&
      ts.isIdentifier(node.name) &&
      node.initializer &&
      ts.isStringLiteralLike(node.initializer) &&
      ts.isVariableDeclarationList(node.parent) &&
      node.parent.flags & ts.NodeFlags.Const
    )
      constants.set(node.name.text, node.initializer.text);
    if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const name = ts.isIdentifier(callee)
        ? callee.text
        : ts.isPropertyAccessExpression(callee)
          ? callee.name.text
          : '';
      if (PATCH_FUNCTIONS.has(name)) found.push(node);
    } else if (
      ts.isIdentifier(node) &&
      PATCH_FUNCTIONS.has(node.text) &&
      !(ts.isCallExpression(node.parent) && node.parent.expression === node) &&
      !(ts.isPropertyAccessExpression(node.parent) && node.parent.name === node) &&
      // An import may name it, not rename it (`patched as p` would hide the calls).
      !(ts.isImportSpecifier(node.parent) && node.parent.name.text === node.text)
    )
      others.push(node);
    ts.forEachChild(node, visit);
  };
  visit(source);
  const idOf = (arg: ts.Expression | undefined): string | null =>
    arg && ts.isStringLiteralLike(arg)
      ? arg.text
      : arg && ts.isIdentifier(arg)
        ? (constants.get(arg.text) ?? null)
        : null;
  return [
    ...found.map((node) => ({ file, call: node.getText(source), id: idOf(node.arguments[0]) })),
    ...others.map((node) => ({ file, call: `${node.parent.getText(source)} (not a call)`, id: null })),
  ];
}

/** The table docs/workflow-changes.md carries between its markers, generated from the registry. */
function patchTable(): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
  const rows = Object.entries(REGISTRY).map(
    ([id, entry]) =>
      `| \`${id}\` | ${cell(entry.changes)} | ${entry.oldShapeFixtures.map((f) => `\`${f}\``).join('<br>') || '—'} | ${cell(entry.retireWhen)} |`,
  );
  return [
    '| Patch id | What it changes | Old-shape fixtures | Retire when |',
    '| --- | --- | --- | --- |',
    ...(rows.length ? rows : ['| _none: this is the baseline_ | | | |']),
  ].join('\n');
}

const TABLE_START = '<!-- patches:start (generated from workflows/patches.ts; test/replay.test.ts checks it) -->';
const TABLE_END = '<!-- patches:end -->';

describe('replay of recorded histories', () => {
  it(
    'replays every recording and every old-shape fixture of the patch registry with the current workflow code',
    { timeout: 300_000 },
    async () => {
      const histories = [...recordings(), ...fixtures()];
      const { replayed, failures } = await replayAll(
        { workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE_PATH! } },
        histories,
      );
      assert.ok(
        histories.length > 0,
        `no recordings in ${RECORDED}; record them with npx tsx test/run.ts test/histories/record.ts`,
      );
      assert.deepEqual(replayed.sort(), histories.map((h) => h.workflowId).sort(), 'every history was replayed');
      assert.deepEqual(failures, []);
    },
  );

  it(
    'replays every recording with the tracing interceptors in the bundle: tracing on or off changes no id',
    { timeout: 300_000 },
    async () => {
      // The recordings were made without tracing. Span ids must not draw from the random numbers that
      // approval, message and crew child ids come from, or a worker that starts tracing mid-run would name
      // another child than the one in the history (and a pending approval another id than its row).
      const code = await bundleWorkflows({ traced: true });
      const histories = recordings();
      // The span sink (workers/tracing.ts) is not called during replay; registered so the SDK knows it.
      const sinks = { exporter: { export: { fn: () => undefined } } };
      const { replayed, failures } = await replayAll({ workflowBundle: { code }, sinks }, histories);
      assert.equal(replayed.length, histories.length);
      assert.deepEqual(failures, []);
    },
  );

  it('the recordings cover every workflow type the worker registers', () => {
    const registered = Object.entries(workflows)
      .filter(([, value]) => typeof value === 'function')
      .map(([name]) => name)
      .sort();
    assert.ok(registered.includes('AgentWorkflow'), 'read the workflow types from workflows/index.ts');
    const recorded = new Set(recordings().map((h) => h.workflowType));
    assert.deepEqual(
      registered.filter((type) => !recorded.has(type)),
      [],
      'workflow types without a recording: add a scenario to test/histories/record.ts',
    );
  });

  describe('the patch registry (workflows/patches.ts)', () => {
    it('docs/workflow-changes.md lists exactly the registered patches', () => {
      const docs = fs.readFileSync(DOCS, 'utf8');
      const start = docs.indexOf(TABLE_START);
      const end = docs.indexOf(TABLE_END);
      assert.ok(start >= 0 && end > start, `docs/workflow-changes.md has the lines ${TABLE_START} and ${TABLE_END}`);
      const listed = docs.slice(start + TABLE_START.length, end).trim();
      assert.equal(listed, patchTable(), 'put this table between the markers in docs/workflow-changes.md');
    });

    it('every fixture exists in a sub-folder of test/histories/, has the old shape and is replayed', () => {
      for (const [id, entry] of Object.entries(REGISTRY)) {
        assert.ok(entry.changes.trim() && entry.retireWhen.trim(), `${id}: changes and retireWhen are filled in`);
        for (const fixture of entry.oldShapeFixtures) {
          assert.match(
            fixture,
            /^test\/histories\/[^/]+\/.+\.json$/,
            `${id}: ${fixture} is a .json in a sub-folder of test/histories/ (the top level is re-recorded)`,
          );
          assert.ok(fs.existsSync(path.join(ROOT, fixture)), `${id}: ${fixture} exists`);
          const { history } = readHistory(path.join(ROOT, fixture), fixture);
          assert.ok(!patchMarkers(history).includes(id), `${id}: ${fixture} was recorded before the patch`);
        }
      }
      // fixtures() is what the first test replays.
      assert.deepEqual(
        fixtures().map((f) => f.workflowId),
        Object.values(REGISTRY).flatMap((e) => e.oldShapeFixtures),
      );
    });

    it('the source scan reads patch ids from literals and same-file constants, and flags anything else', () => {
      const sample = [
        "import { deprecatePatch, patched, patched as renamed } from '@temporalio/workflow';",
        "import * as wf from '@temporalio/workflow';",
        "const LATER = 'later-id';",
        '// patched(commented-out) is not code, nor is the string below',
        "const text = 'patched(not-code)';",
        "if (patched('literal-id')) step();",
        'if (wf.patched(LATER)) step();',
        'deprecatePatch(`template-id`);',
        'patched(unknownConstant);',
        'const check = patched;',
      ].join('\n');
      assert.deepEqual(
        patchCallsIn('sample.ts', sample).map((c) => [c.call, c.id]),
        [
          ["patched('literal-id')", 'literal-id'],
          ['wf.patched(LATER)', 'later-id'],
          ['deprecatePatch(`template-id`)', 'template-id'],
          ['patched(unknownConstant)', null],
          ['patched as renamed (not a call)', null],
          ['check = patched (not a call)', null],
        ],
      );
    });

    it('every patched() id in workflows/ is registered, and every registered id is used there', () => {
      const calls = patchCallsInWorkflows();
      assert.deepEqual(
        calls.filter((c) => c.id === null),
        [],
        'pass patched() a string literal or a const declared in the same file',
      );
      assert.deepEqual(
        calls.filter((c) => !(c.id! in REGISTRY)),
        [],
        'patch ids missing from workflows/patches.ts',
      );
      const used = new Set(calls.map((c) => c.id));
      assert.deepEqual(
        Object.keys(REGISTRY).filter((id) => !used.has(id)),
        [],
        'registered patches that no workflow uses: remove their entries',
      );
    });
  });

  it(
    'catches an incompatible change to AgentWorkflow, CrewWorkflow and TaskWorkflow, naming the histories',
    { timeout: 300_000 },
    async () => {
      const { code } = await bundleWorkflowCode({
        workflowsPath: path.join(__dirname, 'replay-fixtures/incompatible-workflows.ts'),
        logger: { ...silentLogger, log: () => undefined } as never,
      });
      const changed = new Set(['AgentWorkflow', 'CrewWorkflow', 'TaskWorkflow']);
      const histories = [...recordings(), ...fixtures()];
      for (const type of changed)
        assert.ok(
          recordings().some((h) => h.workflowType === type),
          `a recording of ${type} (test/histories/record.ts)`,
        );
      const { failures } = await replayAll({ workflowBundle: { code } }, histories);
      assert.deepEqual(
        failures.map((f) => f.workflowId).sort(),
        histories
          .filter((h) => changed.has(h.workflowType))
          .map((h) => h.workflowId)
          .sort(),
        'exactly the histories of the changed workflow types fail to replay',
      );
      for (const failure of failures)
        assert.match(
          failure.error,
          /DeterminismViolation|Nondeterminism|nondetermin/i,
          `${failure.workflowId}: ${failure.error}`,
        );
    },
  );
});
