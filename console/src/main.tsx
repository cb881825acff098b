import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, createApi, savedKey, saveKey, verifyKey, type Approval } from './api';
import { AgentPage, AgentsPage } from './agents';
import { ApprovalsPage } from './approvals';
import { ChatPage } from './chat';
import { CrewPage, CrewsPage, GovernancePage } from './crews';
import { TaskPage } from './task';
import { SessionContext, type ConsoleConfig, type Session } from './ui';
import './style.css';

type Route =
  | { page: 'approvals' }
  | { page: 'agents' }
  | { page: 'agent'; id: string }
  | { page: 'task'; id: string }
  | { page: 'chat'; agentId?: string }
  | { page: 'crews' }
  | { page: 'crew'; id: string }
  | { page: 'governance' }
  | { page: 'home' };

function parseRoute(hash: string): Route {
  const [, first, second] = hash.replace(/^#/, '').split('/');
  switch (first) {
    case 'approvals':
      return { page: 'approvals' };
    case 'agents':
      return second ? { page: 'agent', id: second } : { page: 'agents' };
    case 'tasks':
      return second ? { page: 'task', id: second } : { page: 'agents' };
    case 'chat':
      return { page: 'chat', agentId: second || undefined };
    case 'crews':
      return second ? { page: 'crew', id: second } : { page: 'crews' };
    case 'governance':
      return { page: 'governance' };
    default:
      return { page: 'home' };
  }
}

function useHashRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return parseRoute(hash);
}

const NAV = [
  { href: '#/approvals', label: 'Approvals', pages: ['approvals'] },
  { href: '#/agents', label: 'Agents', pages: ['agents', 'agent', 'task'] },
  { href: '#/chat', label: 'Chat', pages: ['chat'] },
  { href: '#/crews', label: 'Crews', pages: ['crews', 'crew'] },
  { href: '#/governance', label: 'Governance', pages: ['governance'] },
];

function SignIn({ onSignedIn, notice }: { onSignedIn(key: string): void; notice?: string }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | undefined>(notice);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await verifyKey(key.trim());
      onSignedIn(key.trim());
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? 'That API key was refused: it is unknown or revoked. Check it and try again.'
          : `Could not sign in: ${err instanceof Error ? err.message : String(err)}`,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="signin">
      <h1>Agent console</h1>
      <p>Sign in with an API key of your organisation. It is kept in this browser tab only, until you sign out.</p>
      <form onSubmit={(e) => void submit(e)} class="stack">
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          required
          value={key}
          aria-describedby={error ? 'signin-error' : undefined}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
        />
        <button type="submit" class="primary" disabled={busy || !key.trim()}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {error ? (
          <p id="signin-error" class="note bad" role="alert">
            {error}
          </p>
        ) : null}
      </form>
    </main>
  );
}

function App() {
  const [key, setKey] = useState<string | null>(savedKey());
  const [notice, setNotice] = useState<string>();
  const [config, setConfig] = useState<ConsoleConfig | null>(null);
  const route = useHashRoute();

  const signOut = (message?: string) => {
    saveKey(null);
    setKey(null);
    setNotice(message);
  };
  const session = useMemo<Session | null>(
    () =>
      key
        ? {
            api: createApi(key, () => signOut('The server refused the API key (revoked?). Sign in again.')),
            config,
          }
        : null,
    [key, config],
  );

  useEffect(() => {
    fetch('config.json')
      .then((r) => (r.ok ? (r.json() as Promise<ConsoleConfig>) : null))
      .then(setConfig)
      .catch(() => setConfig(null));
  }, []);

  // The first page: the inbox when anything waits for a decision, the agents otherwise.
  useEffect(() => {
    if (!session || route.page !== 'home') return;
    session.api
      .get<{ approvals: Approval[] }>('/approvals?status=pending&limit=1')
      .then((r) => location.replace(r.approvals.length ? '#/approvals' : '#/agents'))
      .catch(() => location.replace('#/agents'));
  }, [session, route.page]);

  if (!session) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(k) => {
          saveKey(k);
          setNotice(undefined);
          setKey(k);
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Agent console</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.href}>
                <a href={n.href} aria-current={n.pages.includes(route.page) ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <button type="button" class="signout" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {route.page === 'approvals' ? (
          <ApprovalsPage />
        ) : route.page === 'agents' ? (
          <AgentsPage />
        ) : route.page === 'agent' ? (
          <AgentPage key={route.id} id={route.id} />
        ) : route.page === 'task' ? (
          <TaskPage key={route.id} id={route.id} />
        ) : route.page === 'chat' ? (
          <ChatPage agentId={route.agentId} />
        ) : route.page === 'crews' ? (
          <CrewsPage />
        ) : route.page === 'crew' ? (
          <CrewPage key={route.id} id={route.id} />
        ) : route.page === 'governance' ? (
          <GovernancePage />
        ) : (
          <p class="muted">Loading…</p>
        )}
      </main>
    </SessionContext.Provider>
  );
}

render(<App />, document.getElementById('app')!);
