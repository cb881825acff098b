import { useState } from 'preact/hooks';
import { type Agent, type Approval, type Decision, type TaskDetail } from './api';
import { Badge, ErrorNote, Json, Loading, PageTitle, shortId, usePoll, useSession, when } from './ui';

const TERMINAL = ['completed', 'failed', 'cancelled'];

type Entry =
  { kind: 'decision'; at: string; decision: Decision } | { kind: 'approval'; at: string; approval: Approval };

const LABEL: Record<string, string> = {
  plan: 'Plan',
  tool_call: 'Tool call',
  delegate: 'Delegation',
  escalate: 'Escalation',
  complete: 'Final answer',
};

/** A task's reasoning trace as a timeline; polls until the task reaches a terminal status. */
export function TaskPage({ id }: { id: string }) {
  const { api, config } = useSession();
  const [done, setDone] = useState(false);
  const task = usePoll(
    async () => {
      const detail = await api.get<TaskDetail>(`/tasks/${id}`);
      // A finished task changes no more: stop asking (the last load already has its final trace).
      setDone(TERMINAL.includes(detail.status));
      return detail;
    },
    1000,
    [id],
    !done,
  );
  const approvals = usePoll(
    () => api.get<{ approvals: Approval[] }>(`/approvals?status=all&taskId=${id}`).then((r) => r.approvals),
    2000,
    [id],
    !done,
  );
  const agentId = task.data?.agentId;
  const agent = usePoll(
    () => (agentId ? api.get<Agent>(`/agents/${agentId}`) : Promise.resolve(undefined)),
    5000,
    [agentId],
    !done,
  );

  const t = task.data;
  if (!t) return task.error ? <ErrorNote error={task.error} /> : <Loading what="the task" />;
  const entries: Entry[] = [
    ...t.reasoningTrace.map((d): Entry => ({ kind: 'decision', at: d.createdAt, decision: d })),
    ...(approvals.data ?? []).map((a): Entry => ({ kind: 'approval', at: a.createdAt, approval: a })),
  ].sort((x, y) => x.at.localeCompare(y.at));
  const answer = (t.output as { answer?: unknown } | null)?.answer;
  const waiting =
    t.status === 'waiting_for_budget'
      ? 'Waiting for the token budget to refill (a durable timer; it resumes on its own).'
      : agent.data?.live?.waitingForSlot && agent.data.live.current?.taskId === t.id
        ? 'Waiting for one of the active-agent slots.'
        : undefined;
  return (
    <section>
      <PageTitle>{t.title}</PageTitle>
      <dl class="facts">
        <dt>Status</dt>
        <dd data-testid="task-status">
          <Badge status={t.status} />
          {done ? null : <span class="muted small"> updating live</span>}
        </dd>
        <dt>Agent</dt>
        <dd>
          <a href={`#/agents/${t.agentId}`}>{agent.data?.name ?? shortId(t.agentId)}</a>
        </dd>
        <dt>Tokens</dt>
        <dd data-testid="task-tokens">
          {(t.usage.inputTokens + t.usage.outputTokens).toLocaleString()} ({t.usage.inputTokens.toLocaleString()} in,{' '}
          {t.usage.outputTokens.toLocaleString()} out) over {t.steps} step(s)
        </dd>
        <dt>Started · finished</dt>
        <dd>
          {when(t.startedAt)} · {when(t.completedAt)}
        </dd>
        {config ? (
          <>
            <dt>Workflow</dt>
            <dd>
              <a
                href={`${config.temporalUiUrl}/namespaces/${encodeURIComponent(config.namespace)}/workflows/agent-${t.agentId}`}
                target="_blank"
                rel="noreferrer"
              >
                The agent's workflow in the Temporal Web UI
              </a>
            </dd>
          </>
        ) : null}
        {t.traceUrl ? (
          <>
            <dt>Trace</dt>
            <dd>
              <a href={t.traceUrl} target="_blank" rel="noreferrer" data-testid="task-trace">
                The task's trace: model calls, tools and waits with their timings
              </a>
            </dd>
          </>
        ) : null}
      </dl>
      {waiting ? (
        <p class="note warn" role="status">
          {waiting}
        </p>
      ) : null}
      {t.error ? (
        <p class="note bad" role="alert">
          {t.error}
        </p>
      ) : null}
      <ErrorNote error={task.error} />

      <h2 id="timeline-h">Reasoning trace</h2>
      {entries.length === 0 ? (
        <p class="muted">{done ? 'No steps were recorded.' : 'No steps yet: the agent is starting.'}</p>
      ) : (
        <ol class="timeline" aria-labelledby="timeline-h">
          {entries.map((e) =>
            e.kind === 'decision' ? (
              <li class={`event ${e.decision.decisionType}`} data-step={e.decision.step}>
                <div class="event-head">
                  <strong>
                    Step {e.decision.step} · {LABEL[e.decision.decisionType] ?? e.decision.decisionType}
                  </strong>
                  <span class="muted small">{when(e.at)}</span>
                </div>
                <p>{e.decision.reasoning}</p>
                {e.decision.action != null ? (
                  <Json label={`Step ${e.decision.step} arguments`} value={e.decision.action} />
                ) : null}
                {e.decision.result != null ? (
                  <Json label={`Step ${e.decision.step} result`} value={e.decision.result} />
                ) : null}
              </li>
            ) : (
              <li class="event approval" data-approval={e.approval.id}>
                <div class="event-head">
                  <strong>Approval of {e.approval.proposedAction.tool}</strong> <Badge status={e.approval.status} />
                  <span class="muted small">{when(e.at)}</span>
                </div>
                <p>
                  {e.approval.status === 'pending' ? (
                    <a href="#/approvals">Decide it in the inbox</a>
                  ) : (
                    <>
                      {e.approval.decidedBy ? `By ${e.approval.decidedBy}` : 'No decision'}
                      {e.approval.reason ? `: ${e.approval.reason}` : ''}
                      {e.approval.editedAction ? ' (arguments edited)' : ''}
                    </>
                  )}
                </p>
              </li>
            ),
          )}
        </ol>
      )}
      {answer !== undefined ? (
        <>
          <h2>Final answer</h2>
          <div class="answer" data-testid="final-answer">
            {typeof answer === 'string' ? answer : <Json value={answer} />}
          </div>
        </>
      ) : null}
    </section>
  );
}
