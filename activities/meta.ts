import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { AgentRejectedError, type TemporalGateway } from '../client/gateway';
import type { Config } from '../lib/config';
import type { Db } from '../lib/db';
import { agentStatus, countActiveAgentsExcept } from '../lib/records/agents';
import { insertMetaCrew } from '../lib/records/crews';
import { updateMetaRun, type MetaRunProgress } from '../lib/records/meta-runs';
import { DEFAULT_TOOLS } from '../lib/models';
import { extractJson, parsePlan } from '../contract/crew-plan';
import type {
  AgentConfig,
  AgentSettings,
  CrewMember,
  MetaPlanNode,
  MetaTeamLimits,
  MetaTeamMember,
} from '../contract/definitions';
import { toolAllowed } from '../contract/definitions';
import { META_TEAM_MARKER } from './llm/offline';
import type { StepRunner } from './steps';
import { stableUuid } from '../lib/stable-uuid';

/** A team member as created: its agent id and configuration, for the crew. */
export type MetaCrewMember = CrewMember & { agent: AgentConfig };

/** The model's answer was not a usable team or plan; another attempt may answer better. */
const UNUSABLE_DESIGN = 'MetaDesignUnusable';
/** Creating the team would pass MAX_AGENTS; retrying cannot help until agents are archived. */
const AGENT_LIMIT = 'AgentLimitReached';

const TEAM_INSTRUCTIONS =
  'Design a team of specialised agents for the objective and decompose the objective into sub-tasks for them. ' +
  'Each sub-task names the capabilities it needs (capabilities of team members) and the ids of the sub-tasks that must finish first; ' +
  'the sub-tasks form a DAG. Answer only with JSON: ' +
  '{"team":[{"name":"short name","role":"one word","objective":"what this agent is for","capabilities":["capability"]}],' +
  '"subtasks":[{"id":"short-id","title":"what to do","capabilities":["capability"],"dependsOn":["id"]}]}';

/**
 * An agent id derived from the meta run and the member's place in the team, so a retried creation finds
 * the agents it already created instead of creating them again. Formatted as a UUID (version 8, custom).
 */
export function metaAgentId(metaId: string, index: number): string {
  return derivedUuid(`${metaId}:agent:${index}`);
}

/** The crew of a meta run, derived the same way. */
export function metaCrewId(metaId: string): string {
  return derivedUuid(`${metaId}:crew`);
}

/**
 * A member of a team an agent started takes that agent's provider, model, approval rules and budget, its
 * autonomy, and only the default tools it has itself: never more than its creator (as with agent_manager).
 */
function limitedBy(limits: MetaTeamLimits): Partial<AgentConfig> {
  return {
    ...limits,
    allowedTools: DEFAULT_TOOLS.filter((tool) => toolAllowed(limits.allowedTools, tool)),
  };
}

/** Version 8 (custom), apart from the version 5 ids the tools derive. */
const derivedUuid = (seed: string): string => stableUuid(seed, 8);

const strings = (v: unknown): string[] =>
  Array.isArray(v)
    ? v.filter((s): s is string => typeof s === 'string' && s.trim() !== '').map((s) => s.trim().slice(0, 100))
    : [];

/** The team and plan from a model's answer, or why they are not usable. */
export function parseTeamDesign(
  answer: string,
  maxAgents: number,
): { team: MetaTeamMember[]; plan: MetaPlanNode[] } | { error: string } {
  const json = extractJson(answer) as { team?: unknown; subtasks?: unknown } | undefined;
  if (!json || !Array.isArray(json.team) || json.team.length === 0)
    return { error: 'the answer holds no {"team": [...]} JSON' };
  const team: MetaTeamMember[] = json.team.slice(0, maxAgents).map((raw: unknown, i) => {
    const r = (raw ?? {}) as Record<string, unknown>;
    const text = (v: unknown, fallback: string, max: number) =>
      typeof v === 'string' && v.trim() ? v.trim().slice(0, max) : fallback;
    const role = text(r.role, `member-${i + 1}`, 100);
    return {
      name: text(r.name, role, 200),
      role,
      objective: text(r.objective, role, 10_000),
      capabilities: strings(r.capabilities).slice(0, 50),
    };
  });
  const plan = parsePlan(JSON.stringify({ subtasks: json.subtasks ?? [] }));
  if ('error' in plan) return { error: `the plan is not usable: ${plan.error}` };
  // A sub-task only the dropped members (beyond maxAgents) could take would find no one in the crew.
  const offered = new Set(team.flatMap((m) => m.capabilities));
  const orphan = plan.nodes.find((n) => n.capabilities.some((c) => !offered.has(c)));
  if (orphan)
    return { error: `sub-task ${orphan.id} needs capabilities no team member has: ${orphan.capabilities.join(', ')}` };
  return { team, plan: plan.nodes };
}

/**
 * Activities of the meta supervisor: the model call that designs the team and plan, the idempotent
 * creation of the team's agents and crew row, and the meta_runs record.
 */
export function createMetaActivities(deps: {
  db: Db;
  config: Config;
  gateway: Pick<TemporalGateway, 'start' | 'state' | 'archive'>;
  runner: StepRunner;
}) {
  const { db, config, gateway } = deps;
  return {
    /**
     * Asks the deployment's default model for a team of at most `maxAgents` agents and a sub-task DAG over
     * them. With the organisation, the call passes the same admission as a task step (token budgets, a step
     * slot) and fails with an AdmissionWait the workflow sleeps on.
     */
    async designMetaTeam(input: {
      metaId: string;
      objective: string;
      maxAgents: number;
      orgId?: string;
    }): Promise<{ team: MetaTeamMember[]; plan: MetaPlanNode[] }> {
      const prompt = [
        META_TEAM_MARKER,
        `Objective: ${input.objective}`,
        `Team size: at most ${input.maxAgents} agents`,
        '',
        TEAM_INSTRUCTIONS,
      ].join('\n');
      const owner = input.orgId
        ? { agentId: `meta-${input.metaId}`, orgId: input.orgId, priority: 500, agentBudget: null }
        : undefined;
      const reply = await deps.runner.governedModelCall(
        {
          taskId: `meta-${input.metaId}`,
          step: 0,
          provider: null,
          model: null,
          messages: [{ role: 'user', content: prompt }],
          toolNames: [],
          ...(owner ? { owner } : {}),
        },
        { purpose: 'meta' },
      );
      const design = parseTeamDesign(reply.content, input.maxAgents);
      if ('error' in design)
        throw ApplicationFailure.create({ message: `team design: ${design.error}`, type: UNUSABLE_DESIGN });
      return design;
    },

    /**
     * Creates the team's agents (ids derived from the meta run, so a retry creates none twice) and the
     * crew row they work in. Refused when the new agents would pass MAX_AGENTS.
     */
    async createMetaTeam(input: {
      metaId: string;
      orgId: string;
      name: string;
      objective: string;
      team: MetaTeamMember[];
      settings: AgentSettings;
      /** The agent that started the run: no member gets more than it (see MetaTeamLimits). */
      limits?: MetaTeamLimits;
    }): Promise<{ crewId: string; members: MetaCrewMember[] }> {
      const ids = input.team.map((_, i) => metaAgentId(input.metaId, i));
      if ((await countActiveAgentsExcept(db, input.orgId, ids)) + ids.length > config.MAX_AGENTS) {
        throw ApplicationFailure.create({
          message: `agent limit reached: the team needs ${ids.length} agent(s) and MAX_AGENTS is ${config.MAX_AGENTS}`,
          type: AGENT_LIMIT,
          nonRetryable: true,
        });
      }
      const ctx = Context.current();
      const members: MetaCrewMember[] = [];
      for (const [i, m] of input.team.entries()) {
        const agent: AgentConfig = {
          id: ids[i]!,
          orgId: input.orgId,
          name: m.name,
          objective: m.objective,
          type: 'meta',
          capabilities: m.capabilities,
          autonomy: 'autopilot',
          priority: 6,
          allowedTools: DEFAULT_TOOLS,
          systemPrompt: null,
          provider: null,
          model: null,
          fallbackProviders: [],
          mcpServers: [],
          approvalRequiredTools: [],
          approvalTimeoutHours: null,
          onApprovalTimeout: 'fail',
          notify: { type: 'log' },
          tokenBudgetPerMinute: null,
          ...(input.limits ? limitedBy(input.limits) : {}),
          createdAt: new Date().toISOString(),
        };
        const exists = (await agentStatus(db, agent.id)) !== undefined;
        let live = exists ? await gateway.state(agent.id) : null;
        if (!exists) {
          try {
            live = await gateway.start(agent, input.settings);
          } catch (err) {
            // An earlier attempt started it and was lost before recording: use that agent.
            if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
            live = await gateway.state(agent.id);
          }
        }
        members.push({ agentId: agent.id, role: m.role, input: {}, agent: live?.agent ?? agent });
        ctx.heartbeat(i);
      }
      const crewId = metaCrewId(input.metaId);
      await insertMetaCrew(db, {
        id: crewId,
        orgId: input.orgId,
        name: input.name,
        goal: input.objective,
        members: members.map(({ agentId, role, input: i }) => ({ agentId, role, input: i })),
      });
      return { crewId, members };
    },

    /** Archives a finished run's team (each through its workflow); an agent already archived is left as it is. */
    async archiveMetaTeam(input: { agentIds: string[] }): Promise<void> {
      for (const agentId of input.agentIds) {
        try {
          await gateway.archive(agentId);
        } catch (err) {
          if (!(err instanceof AgentRejectedError)) throw err;
        }
        Context.current().heartbeat(agentId);
      }
    },

    /** Records the run's progress; a finished run is never changed again. */
    async recordMetaRun(input: MetaRunProgress): Promise<void> {
      await updateMetaRun(db, input);
    },
  };
}
