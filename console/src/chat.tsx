import { useEffect, useRef, useState } from 'preact/hooks';
import { STORAGE_PREFIX, type Agent, type ChatMessage } from './api';
import { ErrorNote, PageTitle, usePoll, useSession } from './ui';

interface Line {
  key: string;
  role: 'user' | 'assistant' | 'tool';
  text: string;
  streaming?: boolean;
}

const SESSION_STORAGE = `${STORAGE_PREFIX}chat-session.`;

/**
 * Chat with one agent over POST /api/v1/chat's Server-Sent Events: tokens appear as they arrive, tool calls and
 * results as they happen. The session id is kept per agent for this browser session, so its history stays.
 */
export function ChatPage({ agentId }: { agentId: string | undefined }) {
  const { api } = useSession();
  const agents = usePoll(() => api.get<{ agents: Agent[] }>('/agents?limit=500').then((r) => r.agents), 15_000, []);
  const choices = agents.data?.filter((a) => a.status !== 'ARCHIVED') ?? [];
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [lines, setLines] = useState<Line[]>([]);
  const [draft, setDraft] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const abort = useRef<AbortController | null>(null);
  const seq = useRef(0);

  // Load the kept session of this agent (if any) and its history.
  useEffect(() => {
    abort.current?.abort();
    setLines([]);
    setError(undefined);
    const kept = agentId ? sessionStorage.getItem(SESSION_STORAGE + agentId) : null;
    setSessionId(kept);
    if (!kept) return;
    let stopped = false;
    api
      .get<{ messages: ChatMessage[] }>(`/chat/${kept}?limit=200`)
      .then((r) => {
        if (!stopped) setLines(r.messages.map((m) => ({ key: m.id, role: m.role, text: m.content })));
      })
      .catch((err: Error) => !stopped && setError(`Could not load the session's history: ${err.message}`));
    return () => {
      stopped = true;
    };
  }, [agentId]);
  useEffect(() => () => abort.current?.abort(), []);

  const push = (line: Omit<Line, 'key'>) => setLines((ls) => [...ls, { ...line, key: `l${++seq.current}` }]);

  const send = async (e: Event) => {
    e.preventDefault();
    const message = draft.trim();
    if (!agentId || !message) return;
    setBusy(true);
    setError(undefined);
    setDraft('');
    push({ role: 'user', text: message });
    const answerKey = `l${++seq.current}`;
    setLines((ls) => [...ls, { key: answerKey, role: 'assistant', text: '', streaming: true }]);
    const update = (fn: (l: Line) => Line) => setLines((ls) => ls.map((l) => (l.key === answerKey ? fn(l) : l)));
    const controller = new AbortController();
    abort.current = controller;
    try {
      await api.stream(
        '/chat',
        { agentId, message, ...(sessionId ? { sessionId } : {}) },
        (event, raw) => {
          const data = raw as Record<string, unknown>;
          if (event === 'session') {
            setSessionId(String(data.sessionId));
            sessionStorage.setItem(SESSION_STORAGE + agentId, String(data.sessionId));
          } else if (event === 'token') {
            update((l) => ({ ...l, text: l.text + String(data.delta ?? '') }));
          } else if (event === 'tool_call') {
            setLines((ls) => [
              ...ls.filter((l) => l.key !== answerKey),
              {
                key: `l${++seq.current}`,
                role: 'tool',
                text: `Calling ${String(data.name)} ${String(data.arguments ?? '')}`,
              },
              ...ls.filter((l) => l.key === answerKey),
            ]);
          } else if (event === 'tool_result') {
            const content = typeof data.content === 'string' ? data.content : JSON.stringify(data.content);
            setLines((ls) => [
              ...ls.filter((l) => l.key !== answerKey),
              {
                key: `l${++seq.current}`,
                role: 'tool',
                text: `${String(data.name)} ${data.isError ? 'failed' : 'returned'}: ${content}`,
              },
              ...ls.filter((l) => l.key === answerKey),
            ]);
          } else if (event === 'waiting') {
            push({ role: 'tool', text: `Waiting: ${String(data.detail ?? data.reason ?? 'for admission')}` });
          } else if (event === 'message') {
            update((l) => ({ ...l, text: String(data.content ?? l.text), streaming: false }));
          } else if (event === 'error') {
            update((l) => ({ ...l, streaming: false }));
            setError(`The turn ended without an answer: ${String(data.error ?? data.status ?? 'failed')}`);
          }
        },
        controller.signal,
      );
    } catch (err) {
      if (!controller.signal.aborted) setError(err instanceof Error ? err.message : String(err));
    } finally {
      update((l) => ({ ...l, streaming: false }));
      setBusy(false);
    }
  };

  const newSession = () => {
    if (agentId) sessionStorage.removeItem(SESSION_STORAGE + agentId);
    setSessionId(null);
    setLines([]);
  };

  return (
    <section class="chat">
      <PageTitle>Chat</PageTitle>
      <div class="row">
        <label for="chat-agent">Agent</label>
        <select
          id="chat-agent"
          value={agentId ?? ''}
          onChange={(e) => {
            const id = (e.target as HTMLSelectElement).value;
            location.hash = id ? `#/chat/${id}` : '#/chat';
          }}
        >
          <option value="">Choose an agent…</option>
          {choices.map((a) => (
            <option value={a.id} key={a.id}>
              {a.name} ({a.type})
            </option>
          ))}
        </select>
        <button type="button" disabled={!sessionId || busy} onClick={newSession}>
          New session
        </button>
      </div>
      <ErrorNote error={agents.error} />
      <ol class="transcript" aria-label="Conversation" aria-live="polite" aria-busy={busy}>
        {lines.map((l) => (
          <li key={l.key} class={`msg ${l.role}`} data-role={l.role} data-streaming={l.streaming ? 'true' : undefined}>
            <span class="sr-only">{l.role === 'user' ? 'You: ' : l.role === 'assistant' ? 'Agent: ' : 'Tool: '}</span>
            {l.text || (l.streaming ? '…' : '')}
          </li>
        ))}
      </ol>
      {!lines.length && agentId ? <p class="muted">No messages in this session yet.</p> : null}
      <ErrorNote error={error} />
      <form class="composer" onSubmit={(e) => void send(e)}>
        <label for="chat-message" class="sr-only">
          Message
        </label>
        <textarea
          id="chat-message"
          rows={2}
          placeholder={agentId ? 'Write a message (Ctrl+Enter sends)' : 'Choose an agent first'}
          disabled={!agentId}
          value={draft}
          onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void send(e);
          }}
        />
        <button type="submit" class="primary" disabled={!agentId || busy || !draft.trim()}>
          {busy ? 'Answering…' : 'Send'}
        </button>
      </form>
    </section>
  );
}
