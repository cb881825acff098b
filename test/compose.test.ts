import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { checkCompose, parseComposeYaml } from '../scripts/compose-check';
import { JAEGER_IMAGE } from '../scripts/jaeger';
import { CLUSTER_CONFIG_DIR, clusterServiceEnv, DEFAULT_CLUSTER_PORTS, findClusterBinaries } from '../temporal/cluster';

const ROOT = path.resolve(__dirname, '..');
const compose = fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
const run = promisify(execFile);

function withoutRunnerStack(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { TEMPORAL_ADDRESS: _address, DATABASE_URL: _database, ...rest } = env;
  return rest;
}

/** No Docker engine here: the compose file and Dockerfile are checked structurally, and their start-up order is run with the same binaries and files. */
describe('docker-compose.yml without Docker', () => {
  it('parses, references existing files, and starts in dependency order', () => {
    const report = checkCompose();
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.startOrder, [
      ['postgresql', 'jaeger'],
      ['temporal-schema'],
      ['temporal-history'],
      ['temporal-matching', 'temporal-frontend', 'temporal-worker'],
      ['temporal-admin-tools', 'temporal-ui'],
      ['worker', 'api'],
    ]);
    assert.deepEqual(report.dependencies.api, {
      postgresql: 'service_healthy',
      'temporal-admin-tools': 'service_completed_successfully',
    });
    const doc = parseComposeYaml(compose) as any;
    // Anchors and merge keys resolved: the worker keeps the shared settings and adds its metrics port.
    assert.equal(doc.services.worker.environment.TEMPORAL_ADDRESS, 'temporal-frontend:7233');
    assert.equal(doc.services.worker.environment.WORKER_METRICS_PORT, '9464');
    assert.equal(doc.services.api.environment.PORT, '3300');
    // Each Temporal service: the shared server settings plus its own name.
    assert.equal(doc.services['temporal-history'].image, 'temporalio/server:1.29.1');
    assert.equal(doc.services['temporal-history'].environment.TEMPORAL_SERVICE, 'history');
    assert.equal(doc.services['temporal-frontend'].environment.TEMPORAL_DB_HOST, 'postgresql');
    assert.deepEqual(doc.services['temporal-frontend'].entrypoint, [
      '/bin/sh',
      '/etc/temporal/cluster/start-service.sh',
    ]);
    assert.match(doc.services['temporal-ui'].image, /^temporalio\/ui:/);
    // The apps send their spans to Jaeger, the release the tests run, unless .env empties the endpoint.
    assert.equal(doc.services.jaeger.image, JAEGER_IMAGE);
    assert.equal(
      doc.services.api.environment.OTEL_EXPORTER_OTLP_ENDPOINT,
      '${OTEL_EXPORTER_OTLP_ENDPOINT-http://jaeger:4318}',
    );
    // A health check written over several lines (as Prettier formats it) is one list.
    assert.equal(doc.services.worker.healthcheck.test.length, 4);
  });

  it('reports missing files, unknown services, cycles, missing health checks and a root image', () => {
    const broken = compose
      .replace('./temporal/cluster:/etc/temporal/cluster:ro', './temporal/no-such-dir:/etc/temporal/cluster:ro')
      .replace(
        /temporal-admin-tools:\n {6}condition: service_completed_successfully/,
        'temporal-admin-toolz:\n      condition: service_completed_successfully',
      )
      .replace(/(  postgresql:\n    image: postgres:16\n)/, '$1    depends_on: [api]\n')
      .replace(`image: ${JAEGER_IMAGE}`, 'image: jaegertracing/jaeger:2.11.0');
    const report = checkCompose({
      composeText: broken,
      dockerfileText: 'FROM node:20\nCOPY nothing-here ./x\nUSER root\n',
    });
    const expected = [
      /temporal-history: mounts \.\/temporal\/no-such-dir/,
      /temporal-history: does not mount \.\/temporal\/cluster/,
      /worker: depends on unknown service temporal-admin-toolz/,
      /depends_on cycle among: postgresql/,
      /Dockerfile: not a multi-stage build/,
      /Dockerfile: the final stage does not switch to a non-root USER/,
      /Dockerfile: COPY nothing-here/,
      /Dockerfile: no HEALTHCHECK/,
      /Dockerfile: the image runs code from contract\/ but does not COPY it/,
      /worker: long-running service without a health check|api: long-running service without a health check/,
      /jaeger: image jaegertracing\/jaeger:2\.11\.0, but the launcher and the tests run/,
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

  it('reports a Temporal cluster that differs from the one `npm start -- --cluster` runs', () => {
    const broken = compose
      .replace('image: temporalio/server:1.29.1', 'image: temporalio/server:1.28.0')
      .replace('TEMPORAL_HISTORY_SHARDS:', 'TEMPORAL_HISTORY_SHARD:')
      .replace('TEMPORAL_SERVICE: worker', 'TEMPORAL_SERVICE: history')
      .replace(
        'TEMPORAL_DYNAMIC_CONFIG: /etc/temporal/cluster/dynamicconfig.yaml',
        'TEMPORAL_DYNAMIC_CONFIG: /etc/other.yaml',
      )
      .replace('image: temporalio/ui:2.42.1', 'image: temporalio/ui:2.41.0');
    const { problems } = checkCompose({ composeText: broken });
    const expected = [
      /temporal-history: image temporalio\/server:1\.28\.0, but the launcher runs temporalio\/server:1\.29\.1/,
      /temporal-history: sets TEMPORAL_HISTORY_SHARD, which temporal\/cluster\/cluster\.yaml does not read/,
      /the temporalio\/server services run \[frontend,history,history,matching\]/,
      /temporal-frontend: TEMPORAL_DYNAMIC_CONFIG is not \/etc\/temporal\/cluster\/dynamicconfig\.yaml/,
      /temporal-ui: image temporalio\/ui:2\.41\.0, but the launcher runs UI server 2\.42\.1/,
    ];
    for (const pattern of expected)
      assert.ok(
        problems.some((p) => pattern.test(p)),
        `${pattern} in ${JSON.stringify(problems, null, 1)}`,
      );
  });

  it('renders one server configuration from the variables of compose and of the launcher', async () => {
    const { server } = await findClusterBinaries();
    const render = async (vars: Record<string, string>) => {
      const { stdout } = await run(server, ['--config', CLUSTER_CONFIG_DIR, '--env', 'cluster', 'render-config'], {
        env: { PATH: process.env.PATH, ...vars },
      });
      return stdout.split('\n');
    };
    const composeVars = Object.fromEntries(
      Object.entries(
        (parseComposeYaml(compose) as any).services['temporal-history'].environment as Record<string, string>,
      )
        // Compose's defaults, as `docker compose up` without a .env fills them in.
        .map(([k, v]) => [k, String(v).replace(/\$\{\w+:-([^}]*)\}/g, '$1')]),
    );
    const launcherVars = {
      ...clusterServiceEnv({
        db: { host: '127.0.0.1', port: 5432, user: 'postgres', password: 'postgres' },
        ports: DEFAULT_CLUSTER_PORTS,
        ip: '127.0.0.1',
      }),
      TEMPORAL_METRICS_PORT: '8000',
    };
    const [fromCompose, fromLauncher] = await Promise.all([render(composeVars), render(launcherVars)]);
    assert.equal(fromCompose.length, fromLauncher.length, 'the same settings, line for line');
    const differing = new Set(
      fromCompose.flatMap((line, i) => (line === fromLauncher[i] ? [] : [line.trim().split(':')[0]])),
    );
    // Only where each runs (addresses, the dynamic config's mount point) and how much it logs and connects.
    const allowed = [
      'connectAddr',
      'bindOnIP',
      'rpcAddress',
      'filepath',
      'listenAddress',
      'level',
      'maxConns',
      'maxIdleConns',
    ];
    assert.deepEqual(
      [...differing].filter((key) => !allowed.includes(key!)),
      [],
    );
    assert.ok(fromCompose.some((line) => /numHistoryShards: 4$/.test(line)));
    const filepath = (lines: string[]) =>
      path.basename(
        lines
          .find((l) => l.includes('filepath:'))!
          .split(':')[1]!
          .trim(),
      );
    assert.equal(filepath(fromCompose), filepath(fromLauncher));

    const { stdout } = await run(server, [
      'validate-dynamic-config',
      path.join(CLUSTER_CONFIG_DIR, 'dynamicconfig.yaml'),
    ]);
    assert.doesNotMatch(stdout, /error|warning/);
  });

  it('runs the same start-up with the same binaries and files until `agentctl status` answers', async () => {
    const result = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', path.join(ROOT, 'scripts/compose-local.ts'), '--exit'],
        {
          cwd: ROOT,
          // Its own PostgreSQL and Temporal services, not the runner's, as compose would start them.
          env: { ...withoutRunnerStack(process.env), TEMPORAL_TASK_QUEUE: `compose-${process.pid}` },
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
    assert.deepEqual(order.slice(0, 2).sort(), ['jaeger', 'postgresql']);
    assert.deepEqual(order.slice(2, 4), ['temporal-schema', 'temporal-history']);
    assert.deepEqual(order.slice(4, 7).sort(), ['temporal-frontend', 'temporal-matching', 'temporal-worker']);
    assert.deepEqual(order.slice(7, 9).sort(), ['temporal-admin-tools', 'temporal-ui']);
    assert.deepEqual(order.slice(9, 11).sort(), ['api', 'worker']);
    assert.match(result.output, /jaeger: healthy \(http:\/\/127\.0\.0\.1:16686\/api\/services\)/);
    assert.match(result.output, /temporal-schema: completed successfully: Temporal schemas ready/);
    assert.doesNotMatch(result.output, /exited \(/, 'no Temporal service had to be restarted');
    assert.match(
      result.output,
      /temporal-admin-tools: completed successfully: Search attributes ready on 'default': AgentId AgentName/,
    );
    assert.match(result.output, /agentctl status:\n {2}API http:\/\/127\.0\.0\.1:\d+: ok \(postgres ok, temporal ok\)/);
  });
});
