import { ping, type Db } from '../lib/db';
import { pendingTasksRefusal } from '../lib/fuses';
import { activeAgentCount, agentById, listAgents } from '../lib/records/agents';
import { listAgentMessages, topicSubscribers } from '../lib/records/agent-messages';
import { agentTypeEnabled, agentTypeOf, listAgentTypes } from '../lib/records/agent-types';
import type { AgentTypeName } from '../lib/agent-types';
import { approvalById, listApprovals } from '../lib/records/approvals';
import { chatHistory, chatSessionExists, chatSessionOrg } from '../lib/records/chat-messages';
import { crewById, crewMessages, listCrews } from '../lib/records/crews';
import { reasoningTrace } from '../lib/records/decisions';
import { routingView } from '../lib/records/routing';
import { bucketLevels, slotUse, tokensInWindow } from '../lib/records/governance';
import { listMetaRuns, metaRunById } from '../lib/records/meta-runs';
import { scoringStats } from '../lib/records/priority';
import { openCircuits } from '../lib/records/provider-circuits';
import { activeReminders, agentReminder } from '../lib/records/reminders';
import { crewMemberWork, crewTasks, listTasks, taskById } from '../lib/records/tasks';
import { MAX_PAGE_LIMIT, type Page } from './paging';

export type { AgentRecord } from '../lib/records/agents';
export type { ApprovalRecord } from '../lib/records/approvals';
export type { CrewRecord } from '../lib/records/crews';
export type { DecisionRecord } from '../lib/records/decisions';
export type { MetaRunRecord } from '../lib/records/meta-runs';
export type { TaskRecord } from '../lib/records/tasks';

/**
 * What the API reads, every query scoped to the caller's organisation. Read-only: the SQL lives with each
 * table in lib/records/; activities write, driven by the workflows (api/writes.ts holds the two rows the
 * API writes before their workflow exists).
 */
export function createStore(db: Db) {
  return {
    agent: (orgId: string, id: string) => agentById(db, orgId, id),
    agents: (orgId: string, f: Parameters<typeof listAgents>[2]) => listAgents(db, orgId, f),
    activeAgentCount: (orgId: string) => activeAgentCount(db, orgId),

    /** The organisation's agent-type catalogue: defaults with its changes. */
    agentTypes: (orgId: string) => listAgentTypes(db, orgId),
    agentType: (orgId: string, type: AgentTypeName) => agentTypeOf(db, orgId, type),
    /** False when the organisation disabled this agent type. */
    agentTypeEnabled: (orgId: string, type: string) => agentTypeEnabled(db, orgId, type),

    task: (orgId: string, id: string) => taskById(db, orgId, id),
    tasks: (orgId: string, f: Parameters<typeof listTasks>[2]) => listTasks(db, orgId, f),
    reasoningTrace: (taskId: string) => reasoningTrace(db, taskId),
    /** A routed task's route and attempts; null for a task submitted to an agent. */
    routing: (orgId: string, taskId: string) => routingView(db, orgId, taskId),

    /** One page of the messages an agent received (`in`) or sent (`out`), newest first. */
    agentMessages: (orgId: string, agentId: string, f: Parameters<typeof listAgentMessages>[3]) =>
      listAgentMessages(db, orgId, agentId, f),
    /** The topic's subscribers that are not archived. */
    topicSubscribers: (orgId: string, topic: string) => topicSubscribers(db, orgId, topic),

    approval: (orgId: string, id: string) => approvalById(db, orgId, id),
    approvals: (orgId: string, f: Parameters<typeof listApprovals>[2]) => listApprovals(db, orgId, f),

    /** Provider circuits that are not closed, as each worker last reported them. */
    openCircuits: () => openCircuits(db),

    /** One page of a session's messages, oldest first. */
    chatHistory: (orgId: string, sessionId: string, page: Page) => chatHistory(db, orgId, sessionId, page),
    /** True when the organisation has a session with this id (a page past its end is still the session). */
    chatSessionExists: (orgId: string, sessionId: string) => chatSessionExists(db, orgId, sessionId),
    /** A session id may be continued by its own organisation, or chosen fresh by a client. */
    async chatSessionAllowed(orgId: string, sessionId: string): Promise<boolean> {
      const owner = await chatSessionOrg(db, sessionId);
      return owner === undefined || owner === orgId;
    },

    /** Refusal text when the org is at MAX_PENDING_TASKS_PER_ORG, else null. */
    pendingTasksRefusal: (orgId: string, limit: number) => pendingTasksRefusal(db, orgId, limit),

    /** What governance sees now: budget use in the current window, slots, resource buckets, scoring stats. */
    async governance(orgId: string, windowSeconds: number, taskQueue: string) {
      const [tokens, slots, resources, scores] = await Promise.all([
        tokensInWindow(db, orgId, windowSeconds),
        slotUse(db, taskQueue),
        bucketLevels(db),
        scoringStats(db, orgId),
      ]);
      return {
        tokens: { windowSeconds, usedGlobal: tokens.global, usedByOrg: tokens.org },
        slots: Object.fromEntries(slots.map((r) => [r.kind.split(':')[0], { held: r.held, waiting: r.waiting }])),
        resources,
        priority: { ...scores, hitRatio: scores.scored ? scores.cache / scores.scored : null },
      };
    },

    crew: (orgId: string, id: string) => crewById(db, orgId, id),
    crews: (orgId: string, f: Parameters<typeof listCrews>[2]) => listCrews(db, orgId, f),
    /** One page of a crew's message log, in order. */
    crewMessages: (crewId: string, page: Page) => crewMessages(db, crewId, page),
    /** One page of the crew's task rows, oldest first. */
    crewTasks: (crewId: string, page: Page) => crewTasks(db, crewId, page),
    /** Each member's work in the crew: totals by status and the ids of its open tasks (at most a page). */
    crewMemberWork: (crewId: string) => crewMemberWork(db, crewId, MAX_PAGE_LIMIT),

    /** An agent's active reminders, oldest first. */
    reminders: (orgId: string, agentId: string) => activeReminders(db, agentId, orgId),
    reminder: (orgId: string, agentId: string, id: string) => agentReminder(db, orgId, agentId, id),

    metaRun: (orgId: string, id: string) => metaRunById(db, orgId, id),
    metaRuns: (orgId: string, f: Parameters<typeof listMetaRuns>[2]) => listMetaRuns(db, orgId, f),

    ping: () => ping(db),
  };
}

export type Store = ReturnType<typeof createStore>;
