/** The console's only door to the server: the public /api/v1 with the signed-in key as a bearer token. */

// Types only: the console bundle must not pull in the Temporal packages the contract's values import.
import type { Approval } from '../../contract/approval';

export type { Approval };

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** Every sessionStorage entry of the console starts with this. */
export const STORAGE_PREFIX = 'agent-console.';
const KEY_STORAGE = `${STORAGE_PREFIX}api-key`;

/** The key lives in sessionStorage: it goes when the browser tab closes, and is never written elsewhere. */
export const savedKey = (): string | null => sessionStorage.getItem(KEY_STORAGE);
export function saveKey(key: string | null): void {
  if (key) return sessionStorage.setItem(KEY_STORAGE, key);
  // Signing out forgets everything the console kept for the organisation (the key, chat session ids).
  for (const name of Object.keys(sessionStorage)) if (name.startsWith(STORAGE_PREFIX)) sessionStorage.removeItem(name);
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; details?: unknown } };
    if (body.error?.message)
      return new ApiError(res.status, body.error.code ?? 'error', body.error.message, body.error.details);
  } catch {
    // Not JSON: fall through to the status line.
  }
  return new ApiError(res.status, 'http_error', `${res.status} ${res.statusText || 'request failed'}`);
}

export interface Api {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  /** POST that answers Server-Sent Events; `onEvent` gets each event until the stream ends. */
  stream(
    path: string,
    body: unknown,
    onEvent: (event: string, data: unknown) => void,
    signal?: AbortSignal,
  ): Promise<void>;
}

export function createApi(key: string, onUnauthorized: (err: ApiError) => void): Api {
  const request = async (method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> => {
    const res = await fetch(`/api/v1${path}`, {
      method,
      signal,
      headers: {
        authorization: `Bearer ${key}`,
        accept: 'application/json, text/event-stream',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) {
      const err = await errorOf(res);
      if (res.status === 401) onUnauthorized(err);
      throw err;
    }
    return res;
  };
  return {
    async get<T>(path: string) {
      return (await (await request('GET', path)).json()) as T;
    },
    async post<T>(path: string, body: unknown = {}) {
      return (await (await request('POST', path, body)).json()) as T;
    },
    async stream(path, body, onEvent, signal) {
      const res = await request('POST', path, body, signal);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const chunk = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of chunk.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
          }
          if (data.length) onEvent(event, JSON.parse(data.join('\n')));
        }
      }
    },
  };
}

/** Checks a key the way every call will use it; resolves when the server accepts it. */
export async function verifyKey(key: string): Promise<void> {
  const res = await fetch('/api/v1/agents?limit=1', { headers: { authorization: `Bearer ${key}` } });
  if (!res.ok) throw await errorOf(res);
}

// ---- The records the console shows (a subset of the OpenAPI document's fields) ----

export type AgentStatus = 'IDLE' | 'RUNNING' | 'PAUSED' | 'ERROR' | 'ARCHIVED';
export interface QueuedGoal {
  taskId: string;
  title: string;
  priority: number;
}
export interface AgentLive {
  status: AgentStatus;
  paused: boolean;
  errorReason: string | null;
  queue: QueuedGoal[];
  current: QueuedGoal | null;
  goalsCompleted: number;
  goalsFailed: number;
  goalsCancelled: number;
  waitingForSlot?: boolean;
}
export interface Agent {
  id: string;
  name: string;
  objective: string;
  type: string;
  autonomy: string;
  priority: number;
  status: AgentStatus;
  allowedTools: string[];
  currentTaskId: string | null;
  queueLength: number;
  lastActive: string | null;
  tokenBudgetPerMinute?: number | null;
  live?: AgentLive | null;
}
export interface Task {
  id: string;
  agentId: string;
  title: string;
  status: string;
  priority: number;
  input: unknown;
  output: unknown;
  error: string | null;
  steps: number;
  usage: { inputTokens: number; outputTokens: number };
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  /** Set when the task was traced and the API knows the tracing UI (TRACES_UI_URL). */
  traceUrl?: string;
}
export interface Decision {
  step: number;
  decisionType: string;
  reasoning: string;
  action: unknown;
  result: unknown;
  createdAt: string;
}
export interface TaskDetail extends Task {
  reasoningTrace: Decision[];
}
export interface ToolInfo {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
  sideEffect: boolean;
  requiresApproval: boolean;
}
export interface Reminder {
  id: string;
  title: string;
  status: string;
  nextFireAt: string | null;
  firesSoFar: number;
}
export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  createdAt: string;
}
export interface CrewMember {
  agentId: string;
  role: string | null;
  name: string | null;
  agentStatus: AgentStatus | null;
  tasks: { total: number; completed: number; failed: number; cancelled: number };
  running: number;
}
export interface CrewSubTask {
  key: string;
  title: string;
  status: string;
  agentId: string | null;
  taskIds: string[];
  error: string | null;
}
export interface Crew {
  id: string;
  name: string;
  goal: string;
  process: string;
  status: string;
  error: string | null;
  createdAt: string;
}
export interface CrewDetail extends Crew {
  members: CrewMember[];
  messages: { seq: number; fromAgentId: string | null; type: string; content: string; sentAt: string }[];
  tasks: { id: string; agentId: string; title: string; status: string; error: string | null }[];
  live: { subTasks: CrewSubTask[] } | null;
}
export interface Governance {
  limits: {
    globalTokenBudget: number;
    orgTokenBudget: number | null;
    tokenBudgetWindowSeconds: number;
    maxActiveAgents: number;
    maxConcurrentSteps: number;
  };
  usage: {
    tokens: { windowSeconds: number; usedGlobal: number; usedByOrg: number };
    slots: Record<string, { held: number; waiting: number }>;
    resources: { name: string; capacity: number; tokens: number }[];
  };
}
