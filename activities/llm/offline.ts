import { keyConcepts } from '../../lib/semantic-hash';
import type { LlmMessage, LlmProvider, LlmRequest, LlmResponse, ToolCall } from './types';

/**
 * The offline provider: a deterministic stand-in for a model, so the demo and the tests run with no
 * key and no network. It is honest about what it is: every answer starts with "[offline]".
 *
 * It reads the same prompt a model would. Rules, in order:
 * 1. A `script` array in the task input (the JSON block of the first user message) is played turn by
 *    turn: turn N is the Nth assistant reply. Each entry is `{ "call": tool, "args": {...} }`,
 *    `{ "calls": [{ "call", "args" }, ...] }` or `{ "answer": text }`; any entry may add
 *    `"delayMs"` to simulate model latency. When the script runs out, the answer summarises the tool results.
 * 2. With no script: if a tool result is already in the conversation, answer with a summary of it.
 * 3. Otherwise, if the task mentions an http(s) URL and `http_get` is offered, fetch it.
 * 4. Otherwise, if the task starts with "remember" and `memory_write` is offered, store the rest of
 *    the title under the key "notes".
 * 5. Otherwise, if a crew asks for a JSON answer (`responseFormat` in the input), give one: a plan with one
 *    sub-task per listed member and a final step combining them (`crew_plan`), a vote for the first of
 *    the `options` with confidence 0.7 (`crew_vote`), or the goal split at commas and "and" (`crew_items`).
 * 6. Otherwise answer directly with a short plan for the task.
 * Token usage is estimated as one token per four characters. When streaming, words are emitted
 * `tokenDelayMs` apart (default 15 ms).
 *
 * Asked for a priority score (the scoring prompt), it scores from the prompt's own facts: 60 per point of
 * requested priority, plus 100 per blocked task waiting (up to 4), plus 25 per day of age (up to 100),
 * plus up to 300 for the share of the task's key concepts that appear in the objective.
 *
 * Asked to review an answer (the output review prompt, starting with OUTPUT_REVIEW_MARKER), it passes the
 * answer when it contains every phrase the acceptance criteria quote ("…"), case aside, and otherwise names
 * each missing phrase as a reason.
 *
 * Asked to design a team (the meta supervisor's prompt, starting with META_TEAM_MARKER), it answers a
 * fixed team for the objective: a researcher first, then analyst, engineer and reviewer as the team size
 * allows, each taking one sub-task after the research, and a writer whose sub-task depends on all others.
 *
 * In a chat (a conversation without a "Task:" prompt) it answers the last user message with an echo and,
 * for "remember …", stores the note like rule 4.
 */
export function createOfflineProvider(opts: { tokenDelayMs?: number } = {}): LlmProvider {
  const tokenDelayMs = opts.tokenDelayMs ?? 15;
  return {
    name: 'offline',
    defaultModel: 'offline-v1',
    async complete(request, options) {
      const turn = request.messages.filter((m) => m.role === 'assistant').length;
      const review = reviewPrompt(request.messages);
      if (review !== null) return respond(request, JSON.stringify(review), [], turn);
      const team = metaTeamPrompt(request.messages);
      if (team !== null) return respond(request, `[offline] ${JSON.stringify(team)}`, [], turn);
      const scoring = scorePrompt(request.messages);
      if (scoring !== null) return respond(request, JSON.stringify({ priority_score: scoring }), [], turn);
      const task = readTask(request.messages);
      const offered = new Set(request.tools.map((t) => t.name));
      const reply = decide(task, turn, request.messages, offered);
      if (reply.delayMs) await delay(reply.delayMs, options?.signal);
      if (options?.onToken && reply.content) {
        // Streams word by word at a readable pace, like a model would.
        for (const word of reply.content.split(/(?<= )/)) {
          options.onToken(word);
          await delay(tokenDelayMs, options.signal);
        }
      }
      return respond(request, reply.content, reply.toolCalls, turn);
    },
  };
}

interface TaskPrompt {
  title: string;
  input: Record<string, unknown>;
  /** A chat turn rather than a task. */
  chat: boolean;
}

interface Reply {
  content: string;
  toolCalls: Omit<ToolCall, 'id'>[];
  delayMs?: number;
}

interface ScriptEntry {
  call?: string;
  args?: unknown;
  calls?: { call: string; args?: unknown }[];
  answer?: string;
  delayMs?: number;
}

function decide(task: TaskPrompt, turn: number, messages: LlmMessage[], offered: Set<string>): Reply {
  const script = Array.isArray(task.input.script) ? (task.input.script as ScriptEntry[]) : undefined;
  // Only results since the latest user message belong to this turn (a chat has earlier turns).
  const lastUser = messages.map((m) => m.role).lastIndexOf('user');
  const toolResults = messages
    .slice(lastUser + 1)
    .filter((m): m is Extract<LlmMessage, { role: 'tool' }> => m.role === 'tool');
  if (script) {
    const entry = script[turn];
    if (!entry) return { content: summarise(task, toolResults), toolCalls: [] };
    const calls = entry.calls ?? (entry.call ? [{ call: entry.call, args: entry.args }] : []);
    const toolCalls = calls.map((c) => ({ name: c.call, arguments: JSON.stringify(c.args ?? {}) }));
    const content =
      entry.answer !== undefined ? `[offline] ${entry.answer}` : `[offline] Step ${turn + 1} of the script.`;
    return { content, toolCalls, delayMs: entry.delayMs };
  }
  if (toolResults.length > 0) return { content: summarise(task, toolResults), toolCalls: [] };
  const text = `${task.title} ${JSON.stringify(task.input)}`;
  const url = /https?:\/\/[^\s"'<>]+/.exec(text)?.[0];
  if (url && offered.has('http_get')) {
    return {
      content: `[offline] I will fetch ${url} to answer.`,
      toolCalls: [{ name: 'http_get', arguments: JSON.stringify({ url }) }],
    };
  }
  const remember = /^remember\s+(.+)$/i.exec(task.title.trim());
  if (remember && offered.has('memory_write')) {
    const args = { key: 'notes', op: 'append', value: remember[1] };
    return {
      content: '[offline] I will store this note.',
      toolCalls: [{ name: 'memory_write', arguments: JSON.stringify(args) }],
    };
  }
  const crewAnswer = crewFormatAnswer(task.input);
  if (crewAnswer) return { content: `[offline] ${JSON.stringify(crewAnswer)}`, toolCalls: [] };
  if (task.chat) {
    return {
      content: `[offline] You said: "${task.title}". I am the offline provider, so I answer from fixed rules rather than a model; set OPENAI_API_KEY or ANTHROPIC_API_KEY for real answers.`,
      toolCalls: [],
    };
  }
  return {
    content: `[offline] Plan for "${task.title}": understand the request, act within my tools, report back. Done.`,
    toolCalls: [],
  };
}

/** The priority score for a scoring prompt, or null when the conversation is not one. */
function scorePrompt(messages: LlmMessage[]): number | null {
  const text = messages.find((m) => m.role === 'user')?.content ?? '';
  if (!text.startsWith('Analyze the following task and project context. Assign a priority score')) return null;
  const field = (name: string) => new RegExp(`^(?:-\\s*)?${name}:\\s*(.*)$`, 'm').exec(text)?.[1] ?? '';
  const task = new Set(keyConcepts(field('TASK')));
  const objective = new Set(keyConcepts(field('Current Objective')));
  const relevance = task.size === 0 ? 0 : [...task].filter((c) => objective.has(c)).length / task.size;
  const blocked = Math.min(4, Number(field('Blocked Tasks Waiting')) || 0);
  const ageDays = Number(field('Task Age \\(days\\)')) || 0;
  const requested = Number(field('Requested Priority \\(1-10\\)')) || 5;
  return Math.min(1000, Math.round(60 * requested + 100 * blocked + Math.min(100, 25 * ageDays) + 300 * relevance));
}

/** The first line of the output review prompt (activities/validation.ts). */
export const OUTPUT_REVIEW_MARKER = 'OUTPUT REVIEW: check an answer against acceptance criteria';

/** The verdict on an output review prompt, or null when the conversation is not one. */
function reviewPrompt(messages: LlmMessage[]): { pass: boolean; reasons: string[] } | null {
  const text = messages.find((m) => m.role === 'user')?.content ?? '';
  if (!text.startsWith(OUTPUT_REVIEW_MARKER)) return null;
  const criteria = /<criteria>\n([\s\S]*?)\n<\/criteria>/.exec(text)?.[1] ?? '';
  const answer = text.slice(text.indexOf('<answer>\n') + 9, text.lastIndexOf('\n</answer>')).toLowerCase();
  const phrases = [...criteria.matchAll(/["\u201c]([^"\u201d]+)["\u201d]/g)].map((m) => m[1]!);
  const missing = phrases.filter((p) => !answer.includes(p.toLowerCase()));
  return { pass: missing.length === 0, reasons: missing.map((p) => `the answer does not mention "${p}"`) };
}

/** The first line of the meta supervisor's team design prompt (activities/meta.ts). */
export const META_TEAM_MARKER = 'META SUPERVISOR: design a team of agents';

const META_SPECIALISTS = [
  { role: 'researcher', capability: 'research', verb: 'Research' },
  { role: 'analyst', capability: 'analysis', verb: 'Analyse the findings on' },
  { role: 'engineer', capability: 'engineering', verb: 'Work out how to build' },
  { role: 'reviewer', capability: 'review', verb: 'Review the risks of' },
];
const META_WRITER = { role: 'writer', capability: 'writing', verb: 'Write up the combined answer to' };

/** A deterministic team and plan for a team design prompt, or null when the conversation is not one. */
function metaTeamPrompt(messages: LlmMessage[]): unknown {
  const text = messages.find((m) => m.role === 'user')?.content ?? '';
  if (!text.startsWith(META_TEAM_MARKER)) return null;
  const objective = /^Objective:\s*(.*)$/m.exec(text)?.[1]?.trim() ?? '';
  const size = Math.min(5, Math.max(1, Number(/^Team size: at most (\d+)/m.exec(text)?.[1]) || 3));
  const specs = [...META_SPECIALISTS.slice(0, size - 1), META_WRITER];
  const team = specs.map((s) => ({
    name: `${s.role[0]!.toUpperCase()}${s.role.slice(1)}`,
    role: s.role,
    objective: `${s.verb} ${objective}`,
    capabilities: [s.capability],
  }));
  const ids = specs.map((s) => s.capability);
  const subtasks = specs.map((s, i) => ({
    id: s.capability,
    title: `${s.verb}: ${objective}`,
    capabilities: [s.capability],
    dependsOn: s === META_WRITER ? ids.slice(0, i) : i === 0 ? [] : [ids[0]!],
  }));
  return { team, subtasks };
}

/** Deterministic JSON for the crew prompts that ask for it (rule 5). */
function crewFormatAnswer(input: Record<string, unknown>): unknown {
  const goal = String(input.goal ?? input.question ?? '');
  switch (input.responseFormat) {
    case 'crew_plan': {
      const members = Array.isArray(input.members)
        ? (input.members as { name?: string; capabilities?: string[] }[])
        : [];
      const parts = members.map((m, i) => ({
        id: `part-${i + 1}`,
        title: `${goal}: the part for ${m.name ?? `member ${i + 1}`}`,
        capabilities: (m.capabilities ?? []).slice(0, 1),
        dependsOn: [],
      }));
      return {
        subtasks: [
          ...parts,
          { id: 'combine', title: `Combine the parts: ${goal}`, capabilities: [], dependsOn: parts.map((p) => p.id) },
        ],
      };
    }
    case 'crew_vote': {
      const options = Array.isArray(input.options) ? input.options : [];
      return { decision: String(options[0] ?? 'yes'), confidence: 0.7, reason: 'the first option (offline provider)' };
    }
    case 'crew_items':
      return goal
        .split(/,|\band\b/)
        .map((s) => s.trim())
        .filter(Boolean);
    default:
      return undefined;
  }
}

function summarise(task: TaskPrompt, results: Extract<LlmMessage, { role: 'tool' }>[]): string {
  if (results.length === 0) return `[offline] Completed "${task.title}".`;
  const parts = results.map((r) => `${r.name} → ${r.content.length > 200 ? `${r.content.slice(0, 200)}…` : r.content}`);
  return `[offline] Completed "${task.title}" using ${results.length} tool result(s): ${parts.join('; ')}`;
}

/** The task prompt's first line is the title; its JSON code block is the input. */
function readTask(messages: LlmMessage[]): TaskPrompt {
  const users = messages.filter((m) => m.role === 'user');
  const text = users[0]?.content ?? '';
  const taskTitle = /^Task:\s*(.*)$/m.exec(text)?.[1];
  // A conversation has no task prompt: answer its latest user message.
  if (taskTitle === undefined) return { title: users.at(-1)?.content.trim() ?? '', input: {}, chat: true };
  const title = taskTitle;
  const block = /```json\n([\s\S]*?)\n```/.exec(text)?.[1];
  let input: Record<string, unknown> = {};
  if (block) {
    try {
      const parsed: unknown = JSON.parse(block);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) input = parsed as Record<string, unknown>;
    } catch {
      // A prompt without valid JSON simply has no input.
    }
  }
  return { title, input, chat: false };
}

function respond(request: LlmRequest, content: string, calls: Omit<ToolCall, 'id'>[], turn: number): LlmResponse {
  const promptChars = request.messages.reduce((n, m) => n + m.content.length, 0);
  const outputChars = content.length + calls.reduce((n, c) => n + c.name.length + c.arguments.length, 0);
  return {
    content,
    toolCalls: calls.map((c, i) => ({ ...c, id: `offline_${turn}_${i}` })),
    usage: { inputTokens: Math.ceil(promptChars / 4), outputTokens: Math.max(1, Math.ceil(outputChars / 4)) },
    finishReason: calls.length > 0 ? 'tool_calls' : 'stop',
    provider: 'offline',
    model: request.model,
  };
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    // Streaming waits once per word: remove the listener each time, or they pile up on the signal.
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
