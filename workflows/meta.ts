import { executeChild, log, setCurrentDetails, sleep } from '@temporalio/workflow';
import { activitiesFor, admissionWaitOf } from './activities';
import { CrewWorkflow } from './crew';
import { answerText } from '../contract/crew-plan';
import {
  CrewIdAttr,
  crewWorkflowId,
  OrgIdAttr,
  type CrewResult,
  type MetaResult,
  type MetaStatus,
  type MetaWorkflowInput,
} from '../contract/definitions';

/**
 * The meta supervisor: one objective becomes a team of new specialised agents and a plan of sub-tasks
 * over their capabilities, run as a hierarchical crew (a CrewWorkflow child, so the Web UI shows it under
 * this workflow) that is given the plan instead of planning itself. The run ends with every sub-task's
 * answer combined into one result.
 */
export async function MetaSupervisorWorkflow(input: MetaWorkflowInput): Promise<MetaResult> {
  const acts = activitiesFor(input.settings);
  const progress = async (
    status: MetaStatus,
    extra: Omit<Parameters<typeof acts.recordMetaRun>[0], 'metaId' | 'status'> = {},
  ) => {
    setCurrentDetails(`Meta supervisor **${input.name}** is ${status}.`);
    await acts.recordMetaRun({ metaId: input.metaId, status, ...extra });
  };
  /** The team's agents once created: archived at the end unless the run keeps them. */
  let teamIds: string[] = [];
  const finish = async (result: MetaResult): Promise<MetaResult> => {
    // Archived first: whoever reads the run as finished finds its team archived.
    if (input.archiveTeam && teamIds.length > 0) await acts.archiveMetaTeam({ agentIds: teamIds });
    await progress(result.status, { result });
    // An agent that started the run (meta_orchestrate) hears how it ended, as the response to the run's id.
    if (input.requestedBy) {
      await acts.answerRequest({
        orgId: input.orgId,
        agentId: null,
        requesterId: input.requestedBy.agentId,
        requestId: input.metaId,
        taskId: input.requestedBy.taskId,
        content: resultText(input.metaId, result),
      });
    }
    log.info('meta supervisor finished', { metaId: input.metaId, status: result.status });
    return result;
  };
  const failed = (error: unknown, crewId: string | null = null): MetaResult => ({
    status: 'failed',
    crewId,
    combined: null,
    subTasks: [],
    error: failureMessage(error),
  });

  // 1. The model designs the team and decomposes the objective.
  await progress('planning');
  let design;
  try {
    // The design call is admitted like a task step (budgets, step slots); it waits on durable timers.
    const request = {
      metaId: input.metaId,
      objective: input.objective,
      maxAgents: input.maxAgents,
      orgId: input.orgId,
    };
    for (;;) {
      try {
        design = await acts.designMetaTeam(request);
        break;
      } catch (err) {
        const wait = admissionWaitOf(err);
        if (!wait) throw err;
        setCurrentDetails(`Meta supervisor **${input.name}** is waiting for admission (token budget or a step slot).`);
        await sleep(wait.retryAfterMs);
      }
    }
  } catch (err) {
    return finish(failed(err));
  }
  await progress('creating_team', { team: design.team, plan: design.plan });

  // 2. The agents and their crew are created (idempotently: ids are derived from this run).
  let created;
  try {
    created = await acts.createMetaTeam({
      metaId: input.metaId,
      orgId: input.orgId,
      name: input.name,
      objective: input.objective,
      team: design.team,
      settings: input.settings,
      ...(input.requestedBy ? { limits: input.requestedBy.limits } : {}),
    });
  } catch (err) {
    return finish(failed(err));
  }
  teamIds = created.members.map((m) => m.agentId);
  const team = design.team.map((m, i) => ({ ...m, agentId: created.members[i]!.agentId }));
  await progress('running', { team, crewId: created.crewId });

  // 3. The crew runs the plan's DAG on the team.
  let crew: CrewResult;
  try {
    crew = await executeChild(CrewWorkflow, {
      workflowId: crewWorkflowId(created.crewId),
      args: [
        {
          crewId: created.crewId,
          orgId: input.orgId,
          name: input.name,
          goal: input.objective,
          process: 'hierarchical',
          assignment: 'capability',
          input: {},
          members: created.members,
          settings: input.settings,
          consensusThreshold: input.consensusThreshold,
          plan: design.plan,
          ...(input.requestedBy
            ? {
                delegatedBy: {
                  taskId: input.requestedBy.taskId,
                  delegationDepth: input.requestedBy.delegationDepth,
                },
              }
            : {}),
        },
      ],
      typedSearchAttributes: [
        { key: CrewIdAttr, value: created.crewId },
        { key: OrgIdAttr, value: input.orgId },
      ],
      staticSummary: `Crew of meta supervisor ${input.name} (${team.length} agents, ${design.plan.length} sub-tasks)`,
      staticDetails: `**Objective:** ${input.objective}`,
    });
  } catch (err) {
    return finish(failed(err, created.crewId));
  }

  // 4. Every sub-task's answer, in plan order, makes the combined result.
  const nameOf = new Map(team.map((m) => [m.agentId, m.name]));
  const subTasks = design.plan.flatMap((node) => {
    const report = crew.subTasks.find((r) => r.key === node.id);
    return report ? [{ ...report, dependsOn: node.dependsOn }] : [];
  });
  const combined = subTasks
    .filter((r) => r.status === 'completed')
    .map((r) => `## ${r.title} (${(r.agentId && nameOf.get(r.agentId)) ?? 'unassigned'})\n${answerText(r.output)}`)
    .join('\n\n');
  const incomplete = crew.failed.map((f) => `${f.key}: ${f.error ?? 'did not complete'}`);
  return finish({
    status: crew.status === 'completed' && !crew.partial ? 'completed' : 'failed',
    crewId: created.crewId,
    combined: combined || null,
    subTasks,
    error: incomplete.length
      ? `sub-tasks did not complete: ${incomplete.join('; ')}`
      : crew.status === 'completed'
        ? null
        : `crew ${crew.status}`,
  });
}

/** What the agent that started a run is told: the combined answer, or why there is none. */
function resultText(metaId: string, result: MetaResult): string {
  if (result.status === 'completed') return result.combined ?? '(the team answered nothing)';
  const partial = result.combined ? `\n\nWhat the team did answer:\n${result.combined}` : '';
  return `Meta run ${metaId} failed: ${result.error ?? 'no reason given'}${partial}`;
}

/** The innermost message of a failure chain (an activity's or a child's own error, not the wrapper's). */
function failureMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(err);
}
