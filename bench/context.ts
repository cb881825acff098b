import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { TemporalGateway } from '../client/gateway';
import type { Db } from '../lib/db';
import { CreateAgentBody } from '../lib/models';
import type { AgentConfig, AgentSettings } from '../contract/definitions';
import { coresUsed, cpuSeconds, pool, round, serverCounter } from './lib';

/** What every scenario gets: clients of the one stack the whole run shares. */
export interface Bench {
  client: Client;
  /** The same gateway the API uses to reach agent workflows. */
  gateway: TemporalGateway;
  db: Db;
  settings: AgentSettings;
  trivialQueue: string;
  /** Environment of the child processes (addresses, bundle, log level). */
  env: NodeJS.ProcessEnv;
  /** Processes whose CPU time and memory are reported, by pid. */
  named: Map<number, string>;
  workerPid: number;
  serverPid: number;
  metricsPort?: number;
}

/** An agent configured exactly as POST /api/v1/agents would configure it from `body`. */
export function agentConfig(body: Record<string, unknown>): AgentConfig {
  const parsed = CreateAgentBody.parse({ objective: 'benchmark agent', ...body });
  return { id: randomUUID(), orgId: 'default', ...parsed, createdAt: new Date().toISOString() };
}

/** Starts agents through the gateway (update-with-start: returns once each agent's row is written). */
export async function startAgents(
  b: Bench,
  count: number,
  prefix: string,
  opts: { body?: Record<string, unknown>; concurrency?: number; onStarted?: () => void } = {},
): Promise<AgentConfig[]> {
  const agents = Array.from({ length: count }, (_, i) => agentConfig({ ...opts.body, name: `${prefix}-${i}` }));
  await pool(agents, opts.concurrency ?? 20, async (agent) => {
    await b.gateway.start(agent, b.settings);
    opts.onStarted?.();
  });
  return agents;
}

/** CPU time per component and the server's task-dispatch counters at one moment. */
export interface Snapshot {
  at: number;
  cpu: Record<string, number>;
  polls: number;
  syncPolls: number;
}

export async function snapshot(b: Bench): Promise<Snapshot> {
  const [polls, syncPolls] = await Promise.all([
    serverCounter(b.metricsPort, 'poll_success'),
    serverCounter(b.metricsPort, 'poll_success_sync'),
  ]);
  return { at: Date.now(), cpu: cpuSeconds(b.named), polls, syncPolls };
}

export interface Usage {
  seconds: number;
  /** Cores used per component (2 = both cores of this machine busy). */
  cores: Record<string, number>;
  /**
   * Share of tasks handed to a poll that was already waiting (sync match) instead of going through the
   * task queue's backlog: low values mean tasks wait in the server for a poller.
   */
  syncMatchRatio: number;
}

export function usageBetween(a: Snapshot, z: Snapshot): Usage {
  const seconds = (z.at - a.at) / 1000;
  return {
    seconds: round(seconds),
    cores: coresUsed(a.cpu, z.cpu, seconds),
    syncMatchRatio: round((z.syncPolls - a.syncPolls) / (z.polls - a.polls || NaN), 2),
  };
}
