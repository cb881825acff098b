import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { agentSettings } from '../../lib/config';
import { createCrewBody, CrewMessageBody, ListCrewsQuery, Uuid } from '../../lib/models';
import { AgentRejectedError } from '../../client/gateway';
import {
  TERMINAL_CREW_STATUSES,
  type CrewLiveState,
  type CrewProcess,
  type CrewStatus,
  type CrewWorkflowInput,
} from '../../contract/definitions';
import type { AppDeps } from '../deps';
import { PageQuery, type Page } from '../paging';
import { conflict, HttpError, notFound, parse } from '../errors';
import type { CrewRecord } from '../store';

/** How long `stop` waits for the crew to record that it stopped (its children record their cancellation first). */
const STOP_WAIT_MS = 60_000;

/**
 * Crews: created here (status idle), started as a CrewWorkflow, stopped by cancelling it. Messages reach
 * the running crew as signals; the crew's workflow writes its status, result and message log.
 */
export function crewRoutes({ store, writes, gateway, config }: AppDeps): Router {
  const router = Router();
  const CreateCrewBody = createCrewBody(config.CREW_MAX_MEMBERS);

  const loadCrew = async (orgId: string, id: string): Promise<CrewRecord> => {
    const crew = Uuid.safeParse(id).success ? await store.crew(orgId, id) : undefined;
    if (!crew) throw notFound('crew', id);
    return crew;
  };

  const liveState = async (crew: CrewRecord): Promise<CrewLiveState | null> => {
    if (crew.status === 'idle' || TERMINAL_CREW_STATUSES.includes(crew.status as CrewStatus)) return null;
    return gateway.crewState(crew.id);
  };

  /**
   * The crew with each member's state (its agent, counts of its crew tasks, what runs now) and one page
   * (`limit`, `offset`) of its message log and of its tasks: a long-running crew answers in bounded work.
   */
  const view = async (orgId: string, id: string, page: Page = { limit: 50, offset: 0 }) => {
    const crew = await loadCrew(orgId, id);
    const [messages, tasks, work, live, agents] = await Promise.all([
      store.crewMessages(crew.id, page),
      store.crewTasks(crew.id, page),
      store.crewMemberWork(crew.id),
      liveState(crew),
      Promise.all(crew.members.map((m) => store.agent(orgId, m.agentId))),
    ]);
    const members = crew.members.map((m, i) => {
      const own = work.find((w) => w.agentId === m.agentId);
      return {
        ...m,
        name: agents[i]?.name ?? null,
        capabilities: agents[i]?.capabilities ?? [],
        agentStatus: agents[i]?.status ?? null,
        tasks: {
          total: own?.total ?? 0,
          completed: own?.completed ?? 0,
          failed: own?.failed ?? 0,
          cancelled: own?.cancelled ?? 0,
        },
        activeTaskIds: own?.activeTaskIds ?? [],
        running: live?.members.find((l) => l.agentId === m.agentId)?.running ?? 0,
      };
    });
    // The row's status, not the live one: it is written together with the result.
    return { ...crew, members, messages, tasks, live, limit: page.limit, offset: page.offset };
  };

  router.post('/', async (req, res) => {
    const body = parse(CreateCrewBody, req.body, 'body');
    const orgId: string = res.locals.orgId;
    // Members must be live agents of this organisation; report every bad one like a field error.
    const agents = await Promise.all(body.members.map((m) => store.agent(orgId, m.agentId)));
    const issues = body.members.flatMap((m, i) => {
      const agent = agents[i];
      if (!agent) return [{ path: `members.${i}.agentId`, message: `no agent "${m.agentId}" in this organisation` }];
      if (agent.status === 'ARCHIVED')
        return [{ path: `members.${i}.agentId`, message: `agent "${m.agentId}" is archived` }];
      return [];
    });
    if (issues.length) {
      throw new HttpError(
        400,
        'validation_failed',
        `invalid body: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
        { issues },
      );
    }
    const id = randomUUID();
    await writes.createCrew({ id, orgId, ...body });
    res.status(201).json(await view(orgId, id));
  });

  router.get('/', async (req, res) => {
    const query = parse(ListCrewsQuery, req.query, 'query');
    const crews = await store.crews(res.locals.orgId, query);
    res.json({ crews, limit: query.limit, offset: query.offset });
  });

  router.get('/:id', async (req, res) => {
    res.json(await view(res.locals.orgId, req.params.id, parse(PageQuery, req.query, 'query')));
  });

  /**
   * Starts the crew's workflow with its members' current configuration (from their agent workflows) and
   * answers once the crew's running status is recorded. Starting a running crew again is harmless (the
   * same workflow answers); a finished crew cannot start again.
   */
  router.post('/:id/start', async (req, res) => {
    const orgId: string = res.locals.orgId;
    const crew = await loadCrew(orgId, req.params.id);
    if (TERMINAL_CREW_STATUSES.includes(crew.status as CrewStatus))
      throw conflict(`crew is already ${crew.status}; it cannot start again`);
    const members = await Promise.all(
      crew.members.map(async (m) => {
        const live = await gateway.state(m.agentId);
        if (!live || live.status === 'ARCHIVED')
          throw conflict(`member agent ${m.agentId} is not running; it cannot join the crew`);
        return { ...m, agent: live.agent };
      }),
    );
    const input: CrewWorkflowInput = {
      crewId: crew.id,
      orgId,
      name: crew.name,
      goal: crew.goal,
      process: crew.process as CrewProcess,
      assignment: crew.assignment as CrewWorkflowInput['assignment'],
      input: crew.input,
      members,
      settings: agentSettings(config),
      consensusThreshold: config.CREW_CONSENSUS_THRESHOLD,
    };
    try {
      await gateway.startCrew(input, { goal: crew.goal });
    } catch (err) {
      if (err instanceof AgentRejectedError) throw conflict(err.message);
      throw err;
    }
    res.json(await view(orgId, crew.id));
  });

  /** Cancels the crew's workflow, which cancels its children, and answers once it has recorded `stopped`. */
  router.post('/:id/stop', async (req, res) => {
    const orgId: string = res.locals.orgId;
    const crew = await loadCrew(orgId, req.params.id);
    if (crew.status === 'idle') throw conflict('crew has not started; there is nothing to stop');
    if (TERMINAL_CREW_STATUSES.includes(crew.status as CrewStatus)) throw conflict(`crew is already ${crew.status}`);
    await gateway.stopCrew(crew.id, STOP_WAIT_MS);
    res.json(await view(orgId, crew.id));
  });

  /** Delivers a message to the running crew as a signal; the crew stores it in its ordered log. */
  router.post('/:id/messages', async (req, res) => {
    const orgId: string = res.locals.orgId;
    const crew = await loadCrew(orgId, req.params.id);
    const body = parse(CrewMessageBody, req.body, 'body');
    const memberIds = new Set(crew.members.map((m) => m.agentId));
    const issues = (['fromAgentId', 'toAgentId'] as const)
      .filter((field) => body[field] !== null && !memberIds.has(body[field]!))
      .map((field) => ({ path: field, message: 'not a member of this crew' }));
    if (issues.length) {
      throw new HttpError(
        400,
        'validation_failed',
        `invalid body: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
        { issues },
      );
    }
    if (crew.status === 'idle' || TERMINAL_CREW_STATUSES.includes(crew.status as CrewStatus)) {
      throw conflict(`crew is ${crew.status}; messages reach running crews only`);
    }
    const message = { ...body, messageId: body.messageId ?? randomUUID() };
    try {
      await gateway.messageCrew(crew.id, message);
    } catch (err) {
      if (err instanceof AgentRejectedError) throw conflict('crew is not running');
      throw err;
    }
    res.status(202).json({ messageId: message.messageId, status: 'accepted' });
  });

  return router;
}
