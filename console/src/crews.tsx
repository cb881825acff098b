import { type Crew, type CrewDetail, type Governance } from './api';
import { Badge, ErrorNote, Gauge, Loading, PageTitle, shortId, usePoll, useSession, when } from './ui';

export function CrewsPage() {
  const { api } = useSession();
  const crews = usePoll(() => api.get<{ crews: Crew[] }>('/crews?limit=100').then((r) => r.crews), 3000, []);
  return (
    <section>
      <PageTitle>Crews</PageTitle>
      <ErrorNote error={crews.error} />
      {!crews.data ? (
        <Loading what="crews" />
      ) : crews.data.length === 0 ? (
        <p class="muted">No crews yet. Create one with POST /api/v1/crews.</p>
      ) : (
        <ul class="cards" aria-label="Crews">
          {crews.data.map((c) => (
            <li class="card" key={c.id}>
              <div class="card-head">
                <h2 class="h3">
                  <a href={`#/crews/${c.id}`}>{c.name}</a>
                </h2>
                <Badge status={c.status} />
              </div>
              <p>{c.goal}</p>
              <p class="muted small">
                {c.process} · created {when(c.createdAt)}
              </p>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** A crew's members and its sub-tasks as they progress (live while it runs). */
export function CrewPage({ id }: { id: string }) {
  const { api } = useSession();
  const crew = usePoll(() => api.get<CrewDetail>(`/crews/${id}`), 2000, [id]);
  const c = crew.data;
  if (!c) return crew.error ? <ErrorNote error={crew.error} /> : <Loading what="the crew" />;
  const name = (agentId: string | null) =>
    agentId ? (c.members.find((m) => m.agentId === agentId)?.name ?? shortId(agentId)) : '—';
  return (
    <section>
      <PageTitle>{c.name}</PageTitle>
      <p class="lead">{c.goal}</p>
      <p>
        <Badge status={c.status} /> <span class="muted">{c.process}</span>
      </p>
      {c.error ? (
        <p class="note bad" role="alert">
          {c.error}
        </p>
      ) : null}
      <h2 id="members-h">Members</h2>
      <table class="list" aria-labelledby="members-h">
        <thead>
          <tr>
            <th scope="col">Agent</th>
            <th scope="col">Role</th>
            <th scope="col">Status</th>
            <th scope="col">Tasks done / total</th>
          </tr>
        </thead>
        <tbody>
          {c.members.map((m) => (
            <tr key={m.agentId}>
              <td>
                <a href={`#/agents/${m.agentId}`}>{m.name ?? shortId(m.agentId)}</a>
              </td>
              <td>{m.role ?? '—'}</td>
              <td>{m.agentStatus ? <Badge status={m.agentStatus} /> : '—'}</td>
              <td>
                {m.tasks.completed} / {m.tasks.total}
                {m.running ? ` (${m.running} running)` : ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2 id="subtasks-h">Sub-tasks</h2>
      {c.live?.subTasks.length ? (
        <ol class="timeline" aria-labelledby="subtasks-h">
          {c.live.subTasks.map((s) => (
            <li class="event" key={s.key}>
              <div class="event-head">
                <strong>{s.title}</strong> <Badge status={s.status} />
              </div>
              <p class="small">
                {name(s.agentId)}
                {s.taskIds.map((t) => (
                  <>
                    {' · '}
                    <a href={`#/tasks/${t}`}>task {shortId(t)}</a>
                  </>
                ))}
                {s.error ? ` · ${s.error}` : ''}
              </p>
            </li>
          ))}
        </ol>
      ) : c.tasks.length ? (
        <ol class="timeline" aria-labelledby="subtasks-h">
          {c.tasks.map((t) => (
            <li class="event" key={t.id}>
              <div class="event-head">
                <a href={`#/tasks/${t.id}`}>{t.title}</a> <Badge status={t.status} />
              </div>
              <p class="small">{name(t.agentId)}</p>
            </li>
          ))}
        </ol>
      ) : (
        <p class="muted">No sub-tasks yet.</p>
      )}
      <h2 id="messages-h">Messages</h2>
      {c.messages.length ? (
        <ol class="plain" aria-labelledby="messages-h">
          {c.messages.map((m) => (
            <li key={m.seq}>
              <span class="muted small">
                #{m.seq} {m.type} from {name(m.fromAgentId)}:
              </span>{' '}
              {m.content}
            </li>
          ))}
        </ol>
      ) : (
        <p class="muted">No messages.</p>
      )}
    </section>
  );
}

/** The token budget window and the slots in use, as gauges. */
export function GovernancePage() {
  const { api } = useSession();
  const gov = usePoll(() => api.get<Governance>('/governance'), 2000, []);
  const g = gov.data;
  return (
    <section>
      <PageTitle>Governance</PageTitle>
      <ErrorNote error={gov.error} />
      {!g ? (
        <Loading what="limits and usage" />
      ) : (
        <div class="gauges">
          <h2>Token budget (last {g.limits.tokenBudgetWindowSeconds} s)</h2>
          <Gauge label="All organisations" value={g.usage.tokens.usedGlobal} max={g.limits.globalTokenBudget} />
          {g.limits.orgTokenBudget ? (
            <Gauge label="This organisation" value={g.usage.tokens.usedByOrg} max={g.limits.orgTokenBudget} />
          ) : (
            <p>
              This organisation used {g.usage.tokens.usedByOrg.toLocaleString()} tokens in the window (no budget of its
              own).
            </p>
          )}
          <h2>Slots</h2>
          {Object.entries(g.usage.slots).map(([kind, s]) => (
            <Gauge
              key={kind}
              label={kind === 'agent' ? 'Active agents' : kind === 'step' ? 'Concurrent steps' : kind}
              value={s.held}
              max={kind === 'agent' ? g.limits.maxActiveAgents : g.limits.maxConcurrentSteps}
              detail={`${s.waiting} waiting`}
            />
          ))}
          {Object.keys(g.usage.slots).length === 0 ? <p class="muted">No slot in use.</p> : null}
          {g.usage.resources.length ? (
            <>
              <h2>Resource buckets</h2>
              {g.usage.resources.map((r) => (
                <Gauge key={r.name} label={r.name} value={Math.round(r.tokens)} max={r.capacity} detail="tokens left" />
              ))}
            </>
          ) : null}
        </div>
      )}
    </section>
  );
}
