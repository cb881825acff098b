import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { checkCompose, parseComposeYaml } from '../scripts/compose-check';

const ROOT = path.resolve(__dirname, '..');
const compose = fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');

/** No Docker engine here: the compose file and Dockerfile are checked structurally, and their start-up order is run against the dev server. */
describe('docker-compose.yml without Docker', () => {
  it('parses, references existing files, and starts in dependency order', () => {
    const report = checkCompose();
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.startOrder, [
      ['postgresql'],
      ['temporal'],
      ['temporal-admin-tools', 'temporal-ui'],
      ['worker', 'api'],
    ]);
    assert.deepEqual(report.dependencies.api, {
      postgresql: 'service_healthy',
      'temporal-admin-tools': 'service_completed_successfully',
    });
    const doc = parseComposeYaml(compose) as any;
    // Anchors and merge keys resolved: the worker keeps the shared settings and adds its metrics port.
    assert.equal(doc.services.worker.environment.TEMPORAL_ADDRESS, 'temporal:7233');
    assert.equal(doc.services.worker.environment.WORKER_METRICS_PORT, '9464');
    assert.equal(doc.services.api.environment.PORT, '3300');
    assert.match(doc.services.temporal.image, /^temporalio\/auto-setup:/);
    assert.match(doc.services['temporal-ui'].image, /^temporalio\/ui:/);
  });

  it('reports missing files, unknown services, cycles, missing health checks and a root image', () => {
    const broken = compose
      .replace('./temporal/dynamicconfig:', './temporal/no-such-dir:')
      .replace(
        /temporal-admin-tools:\n {6}condition: service_completed_successfully/,
        'temporal-admin-toolz:\n      condition: service_completed_successfully',
      )
      .replace(/(  postgresql:\n    image: postgres:16\n)/, '$1    depends_on: [api]\n');
    const report = checkCompose({
      composeText: broken,
      dockerfileText: 'FROM node:20\nCOPY nothing-here ./x\nUSER root\n',
    });
    const expected = [
      /temporal: mounts \.\/temporal\/no-such-dir/,
      /worker: depends on unknown service temporal-admin-toolz/,
      /depends_on cycle among: postgresql/,
      /Dockerfile: not a multi-stage build/,
      /Dockerfile: the final stage does not switch to a non-root USER/,
      /Dockerfile: COPY nothing-here/,
      /Dockerfile: no HEALTHCHECK/,
      /worker: long-running service without a health check|api: long-running service without a health check/,
    ];
    for (const pattern of expected)
      assert.ok(
        report.problems.some((p) => pattern.test(p)),
        `${pattern} in ${JSON.stringify(report.problems, null, 1)}`,
      );
    assert.match(
      checkCompose({ composeText: 'services:\n\tapi: {}\n' }).problems[0]!,
      /does not parse: line 2: tab indentation/,
    );
  });

  it('runs the same start-up order against the dev server until `agentctl status` answers', async () => {
    const result = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', path.join(ROOT, 'scripts/compose-local.ts'), '--exit'],
        {
          cwd: ROOT,
          env: { ...process.env, TEMPORAL_TASK_QUEUE: `compose-${process.pid}` },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr.on('data', (c: Buffer) => (output += c.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, output }));
    });
    assert.equal(result.code, 0, result.output);
    const order = [...result.output.matchAll(/^ {2}([\w-]+): /gm)].map((m) => m[1]);
    assert.deepEqual(order.slice(0, 2), ['postgresql', 'temporal']);
    assert.deepEqual(order.slice(2, 4).sort(), ['temporal-admin-tools', 'temporal-ui']);
    assert.deepEqual(order.slice(4, 6).sort(), ['api', 'worker']);
    assert.match(
      result.output,
      /temporal-admin-tools: completed successfully: Search attributes ready on 'default': AgentId AgentName/,
    );
    assert.match(result.output, /agentctl status:\n {2}API http:\/\/127\.0\.0\.1:\d+: ok \(postgres ok, temporal ok\)/);
  });
});
