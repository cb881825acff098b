import type { Db } from '../lib/db';
import { insertCrew, type NewCrew } from '../lib/records/crews';
import { insertMetaRun } from '../lib/records/meta-runs';
import { subscribeToTopic, unsubscribeFromTopic } from '../lib/records/agent-messages';
import { pickRouteAgent, setTaskRoute } from '../lib/records/routing';
import type { TaskRoute } from '../contract/definitions';
import { updateAgentType } from '../lib/records/agent-types';

/**
 * The API's only writes: rows that must exist before their workflow does, and the agent-type catalogue,
 * which no workflow owns. A crew is created idle and started later; a meta run's request is answered with
 * its row at once. Everything after belongs to the workflows and their activities.
 */
export function createApiWrites(db: Db) {
  return {
    createCrew: (crew: NewCrew) => insertCrew(db, crew),
    createMetaRun: (run: Parameters<typeof insertMetaRun>[1]) => insertMetaRun(db, run),
    /** Topic subscriptions are rows only: publish reads them when it runs. */
    subscribe: (orgId: string, topic: string, agentId: string) => subscribeToTopic(db, orgId, topic, agentId),
    unsubscribe: (orgId: string, topic: string, agentId: string) => unsubscribeFromTopic(db, orgId, topic, agentId),
    /** The agent a routed task goes to (a round-robin route moves its organisation's turn on). */
    pickRouteAgent: (orgId: string, route: TaskRoute) => pickRouteAgent(db, orgId, route),
    /** Marks a just-submitted task as routed, before its RoutedTaskWorkflow starts. */
    setTaskRoute: (taskId: string, route: TaskRoute) => setTaskRoute(db, taskId, route),
    /** Changes an agent type for one organisation (the settings given; the others kept). */
    updateAgentType: (...args: Parameters<typeof updateAgentType> extends [Db, ...infer R] ? R : never) =>
      updateAgentType(db, ...args),
  };
}

export type ApiWrites = ReturnType<typeof createApiWrites>;
