import { z } from 'zod';
import type { Config } from '../../lib/config';
import type { Db } from '../../lib/db';
import type { ToolSpec } from '../llm/types';
import type { GoalReceipt, InboxMessage, SubmitGoalInput } from '../../contract/definitions';

/** What a tool may touch. Tools never hold their own connections. */
export interface ToolContext {
  db: Db;
  config: Config;
  orgId: string;
  agentId: string;
  taskId: string;
  /** Unique per tool call and stable across retries: `task-<id>:<step>:<index>`. */
  idempotencyKey: string;
  delegationDepth: number;
  maxDelegationDepth: number;
  /** Submits a goal to another agent's workflow (the only way to reach a running agent). */
  submitGoal(agentId: string, goal: SubmitGoalInput): Promise<GoalReceipt>;
  /** Puts a message in another agent's inbox (its workflow); absent where no client is wired. */
  deliverMessage?(agentId: string, message: InboxMessage): Promise<void>;
  signal?: AbortSignal;
}

export interface ToolPolicy {
  sideEffect: boolean;
  requiresApproval: boolean;
  /** Runs as a local activity (see ToolDefinition.local). */
  local: boolean;
}

export interface ToolResult {
  /** What the model sees as the tool's output. */
  content: unknown;
  /** The decision type this call represents in the reasoning trace. */
  decisionType?: 'tool_call' | 'delegate';
}

export interface ToolDefinition<Args = unknown> {
  name: string;
  description: string;
  input: z.ZodType<Args>;
  /** Side-effecting tools apply at most once per idempotency key; copilot agents ask before using them. */
  sideEffect: boolean;
  /** Always needs a human's approval, whatever the agent's autonomy (e.g. http_post). */
  requiresApproval?: boolean;
  /**
   * Runs as a local activity, inside the workflow task that asked for it: for quick reads of our own
   * database only (no side effect, no outside call, well under a second), which a retry repeats harmlessly.
   * It saves the task a hand-off to a worker, a workflow task and two history events.
   */
  local?: boolean;
  run(args: Args, ctx: ToolContext): Promise<ToolResult>;
}

/** Largest tool output stored in the trace and sent to the model; longer output is cut with a marker. */
export const MAX_TOOL_OUTPUT_CHARS = 16_000;

export function boundToolOutput(content: string): string {
  if (content.length <= MAX_TOOL_OUTPUT_CHARS) return content;
  return `${content.slice(0, MAX_TOOL_OUTPUT_CHARS)}…[truncated ${content.length - MAX_TOOL_OUTPUT_CHARS} characters]`;
}

/** A tool failure the model should read and may recover from (never crashes the task). */
export class ToolError extends Error {}

export function defineTool<Args>(def: ToolDefinition<Args>): ToolDefinition<Args> {
  return def;
}

export class ToolRegistry {
  private readonly tools = new Map<string, ToolDefinition<unknown>>();
  /** Each tool's spec, derived once: converting a schema costs more than the rest of a model call's bookkeeping. */
  private readonly specCache = new Map<string, ToolSpec>();

  register(...defs: ToolDefinition<never>[]): this {
    for (const def of defs) {
      this.tools.set(def.name, def as unknown as ToolDefinition<unknown>);
      this.specCache.delete(def.name);
    }
    return this;
  }

  get(name: string): ToolDefinition<unknown> | undefined {
    return this.tools.get(name);
  }

  /** How the workflow must gate a call to each named tool (unknown tools are harmless: they fail as results). */
  policies(names: readonly string[]): Record<string, ToolPolicy> {
    return Object.fromEntries(
      names.map((name) => {
        const def = this.tools.get(name);
        // MCP tools are unknown to us: treat them as actions, gated by the agent's autonomy.
        const external = !def && name.startsWith('mcp__');
        return [
          name,
          {
            sideEffect: def?.sideEffect ?? external,
            requiresApproval: def?.requiresApproval ?? false,
            local: (def?.local ?? false) && !def?.sideEffect,
          },
        ];
      }),
    );
  }

  names(): string[] {
    return [...this.tools.keys()];
  }

  /** JSON schemas of the allowed tools, in the shape providers expect. */
  specs(allowed: readonly string[]): ToolSpec[] {
    return allowed.flatMap((name) => {
      const def = this.tools.get(name);
      if (!def) return [];
      let spec = this.specCache.get(name);
      if (!spec) {
        const { $schema: _ignored, ...parameters } = z.toJSONSchema(def.input, { io: 'input' }) as Record<
          string,
          unknown
        >;
        spec = { name: def.name, description: def.description, parameters };
        this.specCache.set(name, spec);
      }
      return [spec];
    });
  }
}
