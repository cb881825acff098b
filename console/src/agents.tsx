import { useEffect, useRef, useState } from 'preact/hooks';
import { type Agent, type Reminder, type Task } from './api';
import { Badge, ErrorNote, Gauge, Loading, PageTitle, shortId, usePoll, useSession, when } from './ui';

/** Every agent of the organisation with its live status, current task and queue length. */
export function AgentsPage() {
  const { api } = useSession();
  const [showArchived, setShowArchived] = useState(false);
  const agents = usePoll(() => api.get<{ agents: Agent[] }>('/agents?limit=500').then((r) => r.agents), 2000, []);
  const list = agents.data?.filter((a) => showArchived || a.status !== 'ARCHIVED');
  return (
    <section>
      <PageTitle>Agents</PageTitle>
      <label class="inline">
        <input type="checkbox" checked={showArchived} onChange={() => setShowArchived(!showArchived)} /> Show archived
        agents
      </label>
      <ErrorNote error={agents.error} />
      {!list ? (
        <Loading what="agents" />
      ) : list.length === 0 ? (
        <p class="muted">No agents yet. Create one with POST /api/v1/agents or agentctl.</p>
      ) : (
        <table class="list">
          <caption class="sr-only">Agents</caption>
          <thead>
            <tr>
              <th scope="col">Agent</th>
              <th scope="col">Status</th>
              <th scope="col">Current task</th>
              <th scope="col">Queue</th>
            </tr>
          </thead>
          <tbody>
            {list.map((a) => (
              <tr key={a.id} data-agent={a.id}>
                <td>
                  <a href={`#/agents/${a.id}`}>{a.name}</a>
                  <div class="muted small">
                    {a.type} · {a.autonomy}
                  </div>
                </td>
                <td>
                  <Badge status={a.status} />
                </td>
                <td>{a.currentTaskId ? <a href={`#/tasks/${a.currentTaskId}`}>{shortId(a.currentTaskId)}</a> : '—'}</td>
                <td>{a.queueLength}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** One agent: live state and queue, recent tasks, reminders, token use; pause, resume, archive, new task. */
export function AgentPage({ id }: { id: string }) {
  const { api, config } = useSession();
  const agent = usePoll(() => api.get<Agent>(`/agents/${id}`), 2000, [id]);
  const tasks = usePoll(() => api.get<{ tasks: Task[] }>(`/tasks?agentId=${id}&limit=20`).then((r) => r.tasks), 2000, [
    id,
  ]);
  const reminders = usePoll(
    () => api.get<{ reminders: Reminder[] }>(`/agents/${id}/reminders`).then((r) => r.reminders),
    10_000,
    [id],
  );
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<{ tone: 'good' | 'bad'; text: string }>();
  const [confirmArchive, setConfirmArchive] = useState(false);

  const act = async (action: 'pause' | 'resume' | 'archive') => {
    setBusy(true);
    setNote(undefined);
    try {
      const res = await api.post<Agent>(`/agents/${id}/${action}`);
      setNote({
        tone: 'good',
        text: `${action[0]!.toUpperCase()}${action.slice(1)}d: the agent is now ${res.status}.`,
      });
      agent.refresh();
    } catch (err) {
      setNote({ tone: 'bad', text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
      setConfirmArchive(false);
    }
  };

  const a = agent.data;
  if (!a) return agent.error ? <ErrorNote error={agent.error} /> : <Loading what="the agent" />;
  const live = a.live;
  const archived = a.status === 'ARCHIVED';
  const tokens = (tasks.data ?? []).reduce((sum, t) => sum + t.usage.inputTokens + t.usage.outputTokens, 0);
  return (
    <section>
      <PageTitle>{a.name}</PageTitle>
      <p class="lead">{a.objective}</p>
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <Badge status={a.status} />
          {live?.waitingForSlot ? <span class="muted"> waiting for an active slot</span> : null}
          {live?.errorReason ? <span class="note bad"> {live.errorReason}</span> : null}
        </dd>
        <dt>Current task</dt>
        <dd>{live?.current ? <a href={`#/tasks/${live.current.taskId}`}>{live.current.title}</a> : '—'}</dd>
        <dt>Type · autonomy</dt>
        <dd>
          {a.type} · {a.autonomy}
        </dd>
        <dt>Tools</dt>
        <dd>{a.allowedTools.length ? a.allowedTools.join(', ') : 'none'}</dd>
        {live ? (
          <>
            <dt>Goals done</dt>
            <dd>
              {live.goalsCompleted} completed, {live.goalsFailed} failed, {live.goalsCancelled} cancelled
            </dd>
          </>
        ) : null}
        {config ? (
          <>
            <dt>Workflow</dt>
            <dd>
              <a
                href={`${config.temporalUiUrl}/namespaces/${encodeURIComponent(config.namespace)}/workflows/agent-${a.id}`}
                target="_blank"
                rel="noreferrer"
              >
                agent-{shortId(a.id)}… in the Temporal Web UI
              </a>
            </dd>
          </>
        ) : null}
      </dl>
      <div class="actions">
        {a.status === 'PAUSED' ? (
          <button type="button" disabled={busy || archived} onClick={() => void act('resume')}>
            Resume
          </button>
        ) : (
          <button type="button" disabled={busy || archived} onClick={() => void act('pause')}>
            Pause
          </button>
        )}
        <a class="button" href={`#/chat/${a.id}`}>
          Chat
        </a>
        {!archived && !confirmArchive ? (
          <button type="button" class="danger" disabled={busy} onClick={() => setConfirmArchive(true)}>
            Archive…
          </button>
        ) : null}
      </div>
      {confirmArchive ? (
        <ConfirmArchive
          name={a.name}
          busy={busy}
          onArchive={() => void act('archive')}
          onCancel={() => setConfirmArchive(false)}
        />
      ) : null}
      <div aria-live="polite">
        {note ? (
          <p class={`note ${note.tone}`} role={note.tone === 'bad' ? 'alert' : 'status'}>
            {note.text}
          </p>
        ) : null}
      </div>

      <div class="grid">
        <section aria-labelledby="queue-h">
          <h2 id="queue-h">Queue ({live?.queue.length ?? a.queueLength})</h2>
          {live?.queue.length ? (
            <ol class="plain">
              {live.queue.map((g) => (
                <li key={g.taskId}>
                  <a href={`#/tasks/${g.taskId}`}>{g.title}</a> <span class="muted small">priority {g.priority}</span>
                </li>
              ))}
            </ol>
          ) : (
            <p class="muted">Nothing queued.</p>
          )}
          {!archived ? <NewTask agentId={a.id} onCreated={tasks.refresh} /> : null}
        </section>
        <section aria-labelledby="budget-h">
          <h2 id="budget-h">Budget use</h2>
          {a.tokenBudgetPerMinute ? (
            <Gauge
              label="Tokens of its last 20 tasks"
              value={tokens}
              max={a.tokenBudgetPerMinute}
              detail="per-minute budget"
            />
          ) : (
            <p>
              {tokens.toLocaleString()} tokens over its last {tasks.data?.length ?? 0} tasks; no budget of its own (the
              organisation's applies, see <a href="#/governance">Governance</a>).
            </p>
          )}
          <h2 id="reminders-h">Reminders</h2>
          <ErrorNote error={reminders.error} />
          {reminders.data?.length ? (
            <ul class="plain" aria-labelledby="reminders-h">
              {reminders.data.map((r) => (
                <li key={r.id}>
                  {r.title} <Badge status={r.status} />{' '}
                  <span class="muted small">
                    next {when(r.nextFireAt)}, fired {r.firesSoFar}×
                  </span>
                </li>
              ))}
            </ul>
          ) : (
            <p class="muted">No reminders.</p>
          )}
        </section>
      </div>

      <h2 id="tasks-h">Recent tasks</h2>
      <ErrorNote error={tasks.error} />
      {tasks.data?.length ? (
        <table class="list" aria-labelledby="tasks-h">
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Status</th>
              <th scope="col">Tokens</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {tasks.data.map((t) => (
              <tr key={t.id} data-task={t.id}>
                <td>
                  <a href={`#/tasks/${t.id}`}>{t.title}</a>
                </td>
                <td>
                  <Badge status={t.status} />
                </td>
                <td>{(t.usage.inputTokens + t.usage.outputTokens).toLocaleString()}</td>
                <td class="small">{when(t.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">No tasks yet.</p>
      )}
      <p class="muted small">Messages between agents are not shown here: the API has no endpoint that lists them.</p>
    </section>
  );
}

/** Asks before archiving; the safe choice has the focus. */
function ConfirmArchive({
  name,
  busy,
  onArchive,
  onCancel,
}: {
  name: string;
  busy: boolean;
  onArchive(): void;
  onCancel(): void;
}) {
  const keep = useRef<HTMLButtonElement>(null);
  useEffect(() => keep.current?.focus(), []);
  return (
    <div
      class="note warn"
      role="alertdialog"
      aria-labelledby="archive-q"
      onKeyDown={(e) => e.key === 'Escape' && onCancel()}
    >
      <p id="archive-q">
        Archive {name}? Its running and queued tasks are cancelled, its private memory and reminders deleted. This
        cannot be undone.
      </p>
      <div class="actions">
        <button type="button" class="danger" disabled={busy} onClick={onArchive}>
          Archive {name}
        </button>
        <button type="button" ref={keep} onClick={onCancel}>
          Keep it
        </button>
      </div>
    </div>
  );
}

function NewTask({ agentId, onCreated }: { agentId: string; onCreated(): void }) {
  const { api } = useSession();
  const [title, setTitle] = useState('');
  const [priority, setPriority] = useState('5');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [created, setCreated] = useState<Task>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const task = await api.post<Task>('/tasks', { agentId, title: title.trim(), priority: Number(priority) });
      setCreated(task);
      setTitle('');
      onCreated();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="stack" onSubmit={(e) => void submit(e)} aria-labelledby="new-task-h">
      <h3 id="new-task-h" class="h4">
        New task
      </h3>
      <label for="new-task-title">Title</label>
      <input
        id="new-task-title"
        required
        maxLength={1000}
        value={title}
        onInput={(e) => setTitle((e.target as HTMLInputElement).value)}
      />
      <label for="new-task-priority">Priority (1–10)</label>
      <input
        id="new-task-priority"
        type="number"
        min={1}
        max={10}
        value={priority}
        onInput={(e) => setPriority((e.target as HTMLInputElement).value)}
      />
      <button type="submit" class="primary" disabled={busy || !title.trim()}>
        Add task
      </button>
      <ErrorNote error={error} />
      {created ? (
        <p class="note good" role="status">
          Task <a href={`#/tasks/${created.id}`}>{created.title}</a> submitted.
        </p>
      ) : null}
    </form>
  );
}
