import { Context } from '@temporalio/activity';
import { registerSecretsIn } from '../lib/logger';
import { semanticHash } from '../lib/semantic-hash';
import type { Governance } from './governance';
import { estimateTokens } from './governance';
import { cacheScore, recordCachedScore, recordScore, type GoalScore, type ScoreKey } from '../lib/records/priority';
import { insertQueuedTask, type QueuedTaskInput, type QueuedTaskReceipt } from '../lib/records/tasks';
import type { StepDeps, StepRunner } from './steps';

export type { GoalScore };

export interface ScoreGoalInput {
  taskId: string;
  agentId: string;
  orgId: string;
  objective: string;
  title: string;
  input: Record<string, unknown>;
  /** The static 1-10 priority: the fallback (× 100) when scoring fails or is too slow. */
  staticPriority: number;
  /** Queued goals of the agent that list this one in their `dependsOn`. */
  unblocks: number;
  submittedAt: string;
  provider: string | null;
  fallbackProviders: string[];
  model: string | null;
  agentBudget?: number | null;
  timeoutMs: number;
}

/** The scoring prompt (seed 003): unblocking, age and relevance to the objective, answered as JSON. */
export function scoringPrompt(input: ScoreGoalInput, ageDays: number): string {
  return [
    'Analyze the following task and project context. Assign a priority score from 0 to 1000.',
    `TASK: ${input.title}`,
    // Values marked secret never go into a scoring prompt: a priority does not depend on them.
    `DESCRIPTION: ${JSON.stringify({ ...input.input, secrets: undefined }).slice(0, 2000)}`,
    'PROJECT CONTEXT:',
    `- Current Objective: ${input.objective}`,
    `- Blocked Tasks Waiting: ${input.unblocks}`,
    `- Task Age (days): ${ageDays.toFixed(2)}`,
    `- Requested Priority (1-10): ${input.staticPriority}`,
    'Consider:',
    '- The requested priority is what the requester asked for; weigh it, but the factors below decide.',
    '- Tasks that unblock other tasks are more important.',
    '- Older tasks should have higher priority.',
    '- Tasks directly connected to the current objective are critical.',
    'Respond only with JSON: {"priority_score": <integer 0-1000>}',
  ].join('\n');
}

export const SCORING_SYSTEM_PROMPT = 'You are the priority scorer of an agent orchestrator. You answer with JSON only.';

/**
 * Scores a queued goal 0-1000 with the agent's model, reusing a score computed for a task with the same
 * key concepts within PRIORITY_CACHE_MINUTES. Never fails for the model's sake: any failure, a spent
 * budget or a slow answer gives the static priority × 100. Every scoring is recorded with its source and
 * time, so the cache hit ratio and scoring latency can be read from `priority_scores`.
 */
export function createPriorityActivities(
  deps: Pick<StepDeps, 'db' | 'config'> & {
    governance: Governance;
    runner: StepRunner;
  },
) {
  const { db, config, governance } = deps;
  const { completeWithFallback, withStepSlot } = deps.runner;

  const scoreKey = (input: ScoreGoalInput, hash: string, started: number): ScoreKey => ({
    taskId: input.taskId,
    agentId: input.agentId,
    conceptHash: hash,
    durationMs: Date.now() - started,
  });

  async function record(
    input: ScoreGoalInput,
    hash: string,
    result: GoalScore,
    started: number,
    error?: string,
  ): Promise<GoalScore> {
    return recordScore(db, scoreKey(input, hash, started), result, error);
  }

  /** The score of a task with the same key concepts within PRIORITY_CACHE_MINUTES, recorded for this task; null on a miss. */
  async function fromCache(input: ScoreGoalInput, hash: string, started: number): Promise<GoalScore | null> {
    return recordCachedScore(db, scoreKey(input, hash, started), config.PRIORITY_CACHE_MINUTES);
  }

  return {
    /**
     * The cache half of scoreGoal, quick enough to run as a local activity beside the submission: a hit
     * needs no model call and no activity of its own. Null on a miss (then scoreGoal runs).
     */
    async cachedGoalScore(input: ScoreGoalInput): Promise<GoalScore | null> {
      return fromCache(input, semanticHash(input.title, input.input).hash, Date.now());
    },

    /**
     * A submitted goal's task row and its score from the cache, in one local activity where a submission
     * took two (recordTaskQueued, then cachedGoalScore). `cachedScore` is null on a miss: scoreGoal runs.
     */
    async recordTaskQueuedWithCachedScore(
      input: QueuedTaskInput & { scoring: ScoreGoalInput },
    ): Promise<QueuedTaskReceipt & { cachedScore: GoalScore | null }> {
      const receipt = await insertQueuedTask(db, input);
      const cachedScore = await fromCache(
        input.scoring,
        semanticHash(input.scoring.title, input.scoring.input).hash,
        Date.now(),
      );
      return { ...receipt, cachedScore };
    },

    async scoreGoal(input: ScoreGoalInput): Promise<GoalScore> {
      const started = Date.now();
      // This worker may log a provider error before any step of the task ran here: know its secrets first.
      registerSecretsIn(input.input);
      const { hash, concepts } = semanticHash(input.title, input.input);
      const fallback: GoalScore = {
        score: Math.max(0, Math.min(1000, input.staticPriority * 100)),
        source: 'fallback',
      };
      const cached = await fromCache(input, hash, started);
      if (cached) return cached;

      const ageDays = Math.max(0, (Date.now() - Date.parse(input.submittedAt)) / 86_400_000);
      const prompt = scoringPrompt(input, ageDays);
      // One reservation per attempt: a reservation found under its id counts as granted, and a failed
      // attempt settled its own to zero, so a retry reusing it would run unchecked and uncounted.
      const { info } = Context.current();
      const reservationId = `priority:${input.taskId}:${info.activityId}:${info.attempt}`;
      const reservation = await governance.reserveTokens({
        id: reservationId,
        orgId: input.orgId,
        agentId: input.agentId,
        taskId: input.taskId,
        purpose: 'priority',
        estimate: estimateTokens(prompt.length + SCORING_SYSTEM_PROMPT.length, config),
        agentBudget: input.agentBudget,
      });
      if (!reservation.granted) return record(input, hash, fallback, started, `not scored: ${reservation.wait.detail}`);

      let used = 0;
      try {
        // A slow scoring is abandoned (the request aborted) and the static priority stands; so is one that
        // finds every step slot busy for a few seconds (the AdmissionWait is caught below).
        const reply = await withStepSlot(`${input.taskId}:score`, input.staticPriority * 100, () =>
          completeWithFallback(
            {
              taskId: input.taskId,
              step: 0,
              provider: input.provider,
              fallbackProviders: input.fallbackProviders,
              model: input.model,
              messages: [
                { role: 'system', content: SCORING_SYSTEM_PROMPT },
                { role: 'user', content: prompt },
              ],
              toolNames: [],
            },
            { timeoutMs: input.timeoutMs },
          ),
        );
        used = reply.usage.inputTokens + reply.usage.outputTokens;
        const score = parseScore(reply.content);
        if (score === null)
          return record(input, hash, fallback, started, `unreadable score: ${reply.content.slice(0, 200)}`);
        await cacheScore(db, { agentId: input.agentId, conceptHash: hash, concepts, score });
        return record(input, hash, { score, source: 'model' }, started);
      } catch (err) {
        return record(input, hash, fallback, started, `scoring failed: ${(err as Error).message}`);
      } finally {
        await governance.settleTokens(reservationId, used);
      }
    },
  };
}

/** Reads `{"priority_score": n}` (or a bare integer) from a reply; null when there is none. */
export function parseScore(content: string): number | null {
  const json = /\{[^{}]*"priority_score"\s*:\s*(-?\d+(?:\.\d+)?)[^{}]*\}/.exec(content);
  const bare = /^\s*(-?\d+(?:\.\d+)?)\s*$/.exec(content);
  const value = Number((json ?? bare)?.[1]);
  if (!Number.isFinite(value) || (json ?? bare) === null) return null;
  return Math.max(0, Math.min(1000, Math.round(value)));
}
