/**
 * The self-hosted cluster of `npm start -- --cluster` (temporal/cluster.ts). test/run.ts runs this file
 * on its cluster profile: the runner's cluster is checked as it is, and a second cluster is started here
 * on the runner's PostgreSQL server (databases of its own) so that its processes can be killed and its
 * schema step run again without disturbing other test files.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Worker } from '@temporalio/worker';
import pg from 'pg';
import { agentWorkflowId } from '../contract/definitions';
import {
  findClusterBinaries,
  setupSchemas,
  startCluster,
  temporalDatabaseFromUrl,
  type ClusterHandle,
  type TemporalDatabase,
} from '../temporal/cluster';
import { TEMPORAL_SERVER_VERSION } from '../temporal/dev-server';
import { startStack, testConfig, type TestStack } from './helpers/stack';

const run = promisify(execFile);
const onCluster = process.env.TEST_TEMPORAL === 'cluster';

interface ClusterDescription {
  serverVersion: string;
  historyShardCount: number;
  persistenceStore: string;
  visibilityStore: string;
}

/** `temporal operator cluster describe -o json`, as an operator would run it. */
async function describeCluster(address: string): Promise<ClusterDescription> {
  const { stdout } = await run(process.env.TEMPORAL_CLI_PATH!, [
    'operator',
    'cluster',
    'describe',
    '--address',
    address,
    '-o',
    'json',
  ]);
  return JSON.parse(stdout) as ClusterDescription;
}

const script = (key: string) => [
  { call: 'memory_write', args: { key, op: 'set', value: key } },
  { answer: `stored ${key}` },
];

describe('self-hosted Temporal cluster on PostgreSQL', { skip: !onCluster && 'runs on the cluster profile' }, () => {
  it('keeps persistence and visibility in PostgreSQL (the runner’s cluster)', async () => {
    const described = await describeCluster(process.env.TEMPORAL_ADDRESS!);
    assert.equal(described.persistenceStore, 'postgres12');
    assert.equal(described.visibilityStore, 'postgres12');
    assert.equal(described.serverVersion, TEMPORAL_SERVER_VERSION);
    assert.equal(described.historyShardCount, 4);
  });

  describe('a cluster started by the launcher', () => {
    const suffix = randomUUID().slice(0, 8);
    const db: TemporalDatabase = temporalDatabaseFromUrl(process.env.DATABASE_URL ?? 'postgres://unset', {
      name: `temporal_t${suffix}`,
      visibilityName: `temporal_visibility_t${suffix}`,
    });
    const announced: string[] = [];
    let cluster: ClusterHandle;
    let stack: TestStack;

    before(async () => {
      cluster = await startCluster({
        db,
        headless: true,
        historyShards: 2,
        // The runner's cluster shares this PostgreSQL server's connections.
        dbMaxConnections: 3,
        ports: Object.fromEntries(
          [
            'frontend',
            'frontendHttp',
            'history',
            'matching',
            'worker',
            'frontendMembership',
            'historyMembership',
            'matchingMembership',
            'workerMembership',
          ].map((k) => [k, 0]),
        ),
        announce: (msg) => announced.push(msg),
      });
      stack = await startStack(testConfig({ TEMPORAL_ADDRESS: cluster.address }));
    });

    after(async () => {
      await stack?.stop();
      await cluster?.stop();
      const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await admin.connect();
      try {
        for (const name of [db.name, db.visibilityName])
          await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    });

    const completeTask = async (key: string, timeoutMs = 30_000) => {
      const agent = await stack.api.createAgent({ name: `Cluster ${key}`, objective: 'Remember things' });
      const task = await stack.api.createTask({ agentId: agent.id, title: key, input: { script: script(key) } });
      const done = await stack.api.waitForTask(task.id, timeoutMs);
      assert.equal(done.status, 'completed', JSON.stringify(done));
      return { agent, task: done };
    };

    it('runs four service processes with the configured shard count', async () => {
      const pids = Object.values(cluster.services).map((p) => p.pid);
      assert.equal(new Set(pids).size, 4, `four different processes: ${pids.join(', ')}`);
      const described = await describeCluster(cluster.address);
      assert.deepEqual(
        [described.persistenceStore, described.visibilityStore, described.historyShardCount],
        ['postgres12', 'postgres12', 2],
      );
    });

    it('creates the schemas, and a second schema run upgrades nothing and loses nothing', async () => {
      assert.equal(cluster.schema.temporal.before, null);
      assert.equal(cluster.schema.visibility.before, null);
      assert.match(cluster.schema.temporal.after, /^\d+\.\d+$/);
      assert.equal(cluster.schema.changed, true);

      const { agent } = await completeTask('before-schema-run');
      const workflowId = agentWorkflowId(agent.id);
      const countBefore = await stack.client.workflow.count();

      const { sqlTool, schemaDir } = await findClusterBinaries();
      const again = await setupSchemas({ sqlTool, schemaDir, db });
      assert.equal(again.changed, false);
      assert.deepEqual(again.temporal, { before: cluster.schema.temporal.after, after: cluster.schema.temporal.after });
      assert.deepEqual(again.visibility, {
        before: cluster.schema.visibility.after,
        after: cluster.schema.visibility.after,
      });

      assert.equal((await stack.client.workflow.count()).count, countBefore.count);
      const description = await stack.client.workflow.getHandle(workflowId).describe();
      assert.equal(description.status.name, 'RUNNING');
      await completeTask('after-schema-run');
    });

    it('restarts a killed history process, and agents keep working', async () => {
      const history = cluster.services.history;
      const [pid, restarts] = [history.pid, history.restarts];
      history.kill('SIGKILL');
      await history.restarted(restarts);
      assert.notEqual(history.pid, pid);
      assert.ok(
        announced.some((m) => /^Temporal history exited \(signal SIGKILL\); restarting it/.test(m)),
        announced.join('\n'),
      );
      assert.ok(announced.some((m) => /^Temporal history restarted \(pid \d+, restart 1\)/.test(m)));
      // The new process takes the shards over once the old one's membership lapses.
      await completeTask('after-history-restart', 120_000);
    });

    it('replays a history recorded on the cluster against the current workflow code', async () => {
      const { agent } = await completeTask('for-replay');
      const history = await stack.client.workflow.getHandle(agentWorkflowId(agent.id)).fetchHistory();
      assert.ok((history.events?.length ?? 0) > 5);
      await Worker.runReplayHistory(
        { workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE_PATH! } },
        history,
        agentWorkflowId(agent.id),
      );
    });
  });
});
