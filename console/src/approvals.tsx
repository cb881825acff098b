import { useMemo, useState } from 'preact/hooks';
import { ApiError, type Agent, type Approval, type ToolInfo } from './api';
import { validate } from './schema';
import { Badge, countdown, ErrorNote, Json, Loading, PageTitle, Tabs, useNow, usePoll, useSession, when } from './ui';

type Tab = 'pending' | 'decided';

/** Pending requests of the caller's organisation, newest first; decided and expired ones in the second tab. */
export function ApprovalsPage() {
  const { api } = useSession();
  const [tab, setTab] = useState<Tab>('pending');
  const pending = usePoll(
    () => api.get<{ approvals: Approval[] }>('/approvals?status=pending&limit=200').then((r) => r.approvals),
    2000,
    [],
  );
  const decided = usePoll(
    () =>
      api
        .get<{ approvals: Approval[] }>('/approvals?status=all&limit=200')
        .then((r) => r.approvals.filter((a) => a.status !== 'pending')),
    4000,
    [],
    tab === 'decided',
  );
  const agents = usePoll(() => api.get<{ agents: Agent[] }>('/agents?limit=500').then((r) => r.agents), 10_000, []);
  const tools = usePoll(() => api.get<{ tools: ToolInfo[] }>('/tools').then((r) => r.tools), 60_000, []);
  const agentName = (id: string) => agents.data?.find((a) => a.id === id)?.name ?? id.slice(0, 8);
  const count = pending.data?.length;
  // A request whose decision lost a race stays on screen with the outcome until it is dismissed.
  const [kept, setKept] = useState<Approval[]>([]);
  // What the last decision made here did; it outlives the card, which leaves the inbox once decided.
  const [notice, setNotice] = useState<string>();
  const shown = pending.data
    ? [...pending.data, ...kept.filter((k) => !pending.data!.some((p) => p.id === k.id))]
    : undefined;

  return (
    <section>
      <PageTitle>Approvals</PageTitle>
      <Tabs
        label="Approval requests"
        current={tab}
        onChange={(key) => setTab(key as Tab)}
        tabs={[
          { key: 'pending', label: `Pending${count === undefined ? '' : ` (${count})`}` },
          { key: 'decided', label: 'Decided and expired' },
        ]}
      />
      <div aria-live="polite">
        {notice ? (
          <p class="note good" role="status">
            {notice}
          </p>
        ) : null}
      </div>
      {tab === 'pending' ? (
        <div role="tabpanel" id="panel-pending" aria-labelledby="tab-pending">
          <ErrorNote error={pending.error} />
          {!shown ? (
            <Loading what="pending requests" />
          ) : shown.length === 0 ? (
            <p class="muted">Nothing is waiting for a decision.</p>
          ) : (
            <ul class="cards" aria-label="Pending approval requests">
              {shown.map((a) => (
                <PendingApproval
                  key={a.id}
                  approval={a}
                  agentName={agentName(a.agentId)}
                  tool={tools.data?.find((t) => t.name === a.proposedAction.tool)}
                  onDecided={(text) => {
                    setNotice(text);
                    pending.refresh();
                  }}
                  onConflict={() => setKept((k) => [...k.filter((x) => x.id !== a.id), a])}
                  onDismiss={() => {
                    setKept((k) => k.filter((x) => x.id !== a.id));
                    pending.refresh();
                  }}
                />
              ))}
            </ul>
          )}
        </div>
      ) : (
        <div role="tabpanel" id="panel-decided" aria-labelledby="tab-decided">
          <ErrorNote error={decided.error} />
          {!decided.data ? (
            <Loading what="decided requests" />
          ) : decided.data.length === 0 ? (
            <p class="muted">No decided or expired requests yet.</p>
          ) : (
            <ul class="cards" aria-label="Decided and expired approval requests">
              {decided.data.map((a) => (
                <li class="card" key={a.id} data-approval={a.id}>
                  <div class="card-head">
                    <h2 class="h3">{a.title}</h2>
                    <Badge status={a.status} />
                  </div>
                  <dl class="facts">
                    <dt>Agent</dt>
                    <dd>
                      <a href={`#/agents/${a.agentId}`}>{agentName(a.agentId)}</a>
                    </dd>
                    <dt>Tool</dt>
                    <dd>
                      <code>{a.proposedAction.tool}</code>
                    </dd>
                    <dt>Decided by</dt>
                    <dd>{a.decidedBy ?? '—'}</dd>
                    <dt>When</dt>
                    <dd>{when(a.decidedAt ?? a.expiresAt)}</dd>
                    {a.reason ? (
                      <>
                        <dt>Reason</dt>
                        <dd>{a.reason}</dd>
                      </>
                    ) : null}
                    <dt>Task</dt>
                    <dd>
                      <a href={`#/tasks/${a.taskId}`}>open task</a>
                    </dd>
                  </dl>
                  {a.editedAction ? <Json label="Approved arguments (edited)" value={a.editedAction} /> : null}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}

type Mode = 'idle' | 'edit' | 'reject';

function PendingApproval({
  approval: a,
  agentName,
  tool,
  onDecided,
  onConflict,
  onDismiss,
}: {
  approval: Approval;
  agentName: string;
  tool: ToolInfo | undefined;
  onDecided(notice: string): void;
  onConflict(): void;
  onDismiss(): void;
}) {
  const { api } = useSession();
  const now = useNow();
  const [mode, setMode] = useState<Mode>('idle');
  const [draft, setDraft] = useState(() => JSON.stringify(a.proposedAction.arguments, null, 2));
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<{ tone: 'good' | 'bad'; text: string; winner?: Approval }>();
  const left = new Date(a.expiresAt).getTime() - now;
  const settled = outcome?.winner !== undefined;
  const base = `approval-${a.id}`;

  const draftIssues = useMemo(() => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(draft);
    } catch (err) {
      return [{ path: '(json)', message: `not valid JSON: ${(err as Error).message}` }];
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      return [{ path: '(root)', message: 'the arguments must be a JSON object' }];
    return tool ? validate(tool.parameters, parsed) : [];
  }, [draft, tool]);

  const send = async (path: 'approve' | 'reject', body: Record<string, unknown>) => {
    setBusy(true);
    setOutcome(undefined);
    try {
      const done = await api.post<Approval>(`/approvals/${a.id}/${path}`, { decidedBy: 'console', ...body });
      onDecided(`${done.status === 'approved' ? 'Approved' : 'Rejected'}: ${a.title}.`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) {
        // Someone else decided first (or it expired): show what won.
        const winner = await api.get<Approval>(`/approvals/${a.id}`).catch(() => undefined);
        onConflict();
        setOutcome({ tone: 'bad', text: `Not applied (409): ${err.message}`, winner });
      } else {
        setOutcome({ tone: 'bad', text: err instanceof Error ? err.message : String(err) });
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <li class="card" data-approval={a.id} aria-labelledby={`${base}-title`}>
      <div class="card-head">
        <h2 class="h3" id={`${base}-title`}>
          {a.title}
        </h2>
        <span class={`countdown${left < 5 * 60_000 ? ' soon' : ''}`} data-testid="countdown">
          {left > 0 ? `expires in ${countdown(left)}` : 'expired'}
        </span>
      </div>
      <dl class="facts">
        <dt>Agent</dt>
        <dd>
          <a href={`#/agents/${a.agentId}`}>{agentName}</a>
        </dd>
        <dt>Tool</dt>
        <dd>
          <code>{a.proposedAction.tool}</code>
          {tool ? <span class="muted"> — {tool.description}</span> : null}
        </dd>
        <dt>Requested</dt>
        <dd>{when(a.createdAt)}</dd>
        <dt>Task</dt>
        <dd>
          <a href={`#/tasks/${a.taskId}`}>open task</a>
        </dd>
      </dl>
      <h3 class="h4">Proposed arguments</h3>
      <Json label="Proposed arguments" value={a.proposedAction.arguments} />

      {mode === 'edit' ? (
        <div class="editor">
          <label for={`${base}-args`}>Edited arguments (JSON, checked against {a.proposedAction.tool}'s schema)</label>
          <textarea
            id={`${base}-args`}
            rows={8}
            spellcheck={false}
            value={draft}
            aria-invalid={draftIssues.length > 0}
            aria-describedby={`${base}-issues`}
            onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
          />
          <div id={`${base}-issues`} aria-live="polite">
            {draftIssues.length ? (
              <ul class="issues">
                {draftIssues.map((i) => (
                  <li>
                    <code>{i.path}</code> {i.message}
                  </li>
                ))}
              </ul>
            ) : (
              <p class="note good">The arguments match the tool's schema.</p>
            )}
          </div>
        </div>
      ) : null}
      {mode === 'reject' ? (
        <div class="editor">
          <label for={`${base}-reason`}>Reason for rejecting (the agent reads it)</label>
          <input
            id={`${base}-reason`}
            type="text"
            maxLength={2000}
            value={reason}
            onInput={(e) => setReason((e.target as HTMLInputElement).value)}
          />
        </div>
      ) : null}

      <div class="actions">
        {settled ? null : mode === 'idle' ? (
          <>
            <button type="button" class="primary" disabled={busy} onClick={() => void send('approve', {})}>
              Approve
            </button>
            <button type="button" disabled={busy} onClick={() => setMode('edit')}>
              Approve with edits…
            </button>
            <button type="button" class="danger" disabled={busy} onClick={() => setMode('reject')}>
              Reject…
            </button>
          </>
        ) : mode === 'edit' ? (
          <>
            <button
              type="button"
              class="primary"
              disabled={busy || draftIssues.length > 0}
              onClick={() => void send('approve', { editedAction: JSON.parse(draft) })}
            >
              Approve edited call
            </button>
            <button type="button" disabled={busy} onClick={() => setMode('idle')}>
              Cancel
            </button>
          </>
        ) : (
          <>
            <button
              type="button"
              class="danger"
              disabled={busy}
              onClick={() => void send('reject', reason.trim() ? { reason: reason.trim() } : {})}
            >
              Confirm reject
            </button>
            <button type="button" disabled={busy} onClick={() => setMode('idle')}>
              Cancel
            </button>
          </>
        )}
      </div>
      <div aria-live="polite">
        {outcome ? (
          <div class={`note ${outcome.tone}`} role={outcome.tone === 'bad' ? 'alert' : 'status'}>
            <p>{outcome.text}</p>
            {outcome.winner ? (
              <p>
                The request is <Badge status={outcome.winner.status} />
                {outcome.winner.decidedBy ? ` by ${outcome.winner.decidedBy}` : ''}
                {outcome.winner.reason ? ` (${outcome.winner.reason})` : ''}.{' '}
                <button type="button" onClick={onDismiss}>
                  Dismiss
                </button>
              </p>
            ) : null}
          </div>
        ) : null}
      </div>
    </li>
  );
}
