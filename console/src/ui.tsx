import { createContext, type ComponentChildren } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import type { Api } from './api';

export interface ConsoleConfig {
  temporalUiUrl: string;
  namespace: string;
}

export interface Session {
  api: Api;
  config: ConsoleConfig | null;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in page');
  return session;
}

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  refresh(): void;
}

/**
 * Loads with `load` now and every `intervalMs` while `active` (pages poll the public API instead of holding
 * a stream open per record). A failed load keeps the last data and shows the error.
 */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number, deps: unknown[], active = true): Polled<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    setData(undefined);
    setError(undefined);
  }, deps);
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const value = await loadRef.current();
        if (stopped) return;
        setData(value);
        setError(undefined);
      } catch (err) {
        if (!stopped) setError(err instanceof Error ? err.message : String(err));
      }
      if (!stopped && active) timer = setTimeout(() => void run(), intervalMs);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [...deps, tick, active, intervalMs]);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, refresh };
}

/** The current time, updated every `ms`: for countdowns. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

export function Json({ value, label }: { value: unknown; label?: string }) {
  return (
    <pre class="json" aria-label={label}>
      {typeof value === 'string' ? value : JSON.stringify(value, null, 2)}
    </pre>
  );
}

const STATUS_TONE: Record<string, string> = {
  IDLE: 'neutral',
  RUNNING: 'active',
  PAUSED: 'warn',
  ERROR: 'bad',
  ARCHIVED: 'muted',
  queued: 'neutral',
  planning: 'active',
  running: 'active',
  awaiting_approval: 'warn',
  waiting_for_budget: 'warn',
  validating: 'active',
  completed: 'good',
  failed: 'bad',
  cancelled: 'muted',
  pending: 'warn',
  approved: 'good',
  rejected: 'bad',
  expired: 'muted',
  idle: 'neutral',
  stopped: 'muted',
};

export function Badge({ status }: { status: string }) {
  return <span class={`badge tone-${STATUS_TONE[status] ?? 'neutral'}`}>{status.replace(/_/g, ' ')}</span>;
}

export function ErrorNote({ error }: { error: string | undefined }) {
  return error ? (
    <p class="note bad" role="alert">
      {error}
    </p>
  ) : null;
}

export function Loading({ what }: { what: string }) {
  return <p class="muted">Loading {what}…</p>;
}

/** A page's heading, focused on navigation so keyboard and screen-reader users start at the new content. */
export function PageTitle({ children }: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <h1 tabIndex={-1} ref={ref}>
      {children}
    </h1>
  );
}

export function Gauge({ label, value, max, detail }: { label: string; value: number; max: number; detail?: string }) {
  const id = `gauge-${label.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <div class="gauge">
      <div class="gauge-head">
        <span id={id}>{label}</span>
        <span>
          {value.toLocaleString()} / {max.toLocaleString()}
          {detail ? ` · ${detail}` : ''}
        </span>
      </div>
      <meter
        aria-labelledby={id}
        min={0}
        max={Math.max(max, 1)}
        value={value}
        low={max * 0.7}
        high={max * 0.9}
        optimum={0}
      />
    </div>
  );
}

export const shortId = (id: string) => id.slice(0, 8);

export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString();
}

export function countdown(ms: number): string {
  if (ms <= 0) return 'expired';
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}h ${String(m).padStart(2, '0')}m` : `${m}m ${String(sec).padStart(2, '0')}s`;
}

/** Tabs with arrow-key movement (WAI-ARIA tabs pattern). */
export function Tabs<K extends string>({
  label,
  tabs,
  current,
  onChange,
}: {
  label: string;
  tabs: { key: K; label: string }[];
  current: K;
  onChange(key: K): void;
}) {
  const onKey = (e: KeyboardEvent) => {
    const i = tabs.findIndex((t) => t.key === current);
    const next = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : undefined;
    if (next === undefined) return;
    const tab = tabs[(next + tabs.length) % tabs.length]!;
    onChange(tab.key);
    document.getElementById(`tab-${tab.key}`)?.focus();
  };
  return (
    <div role="tablist" aria-label={label} class="tabs" onKeyDown={onKey}>
      {tabs.map((t) => (
        <button
          type="button"
          role="tab"
          id={`tab-${t.key}`}
          aria-selected={t.key === current}
          aria-controls={`panel-${t.key}`}
          tabIndex={t.key === current ? 0 : -1}
          onClick={() => onChange(t.key)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}
