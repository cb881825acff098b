import type { Db } from '../db';
import { insertDecision, type DecisionInput } from './decisions';

/** SQL of `llm_calls`: one row of token usage per (task, step, purpose). */

export interface ModelCallRecord {
  taskId: string;
  step: number;
  provider: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  /** A step's call, or the review of its answer (`review`, never completes). Default `step`. */
  purpose?: 'step' | 'review';
  /** The call's final answer completes the task: its end is written in the same statement. */
  completes: boolean;
  answer: string;
}

/**
 * The call's usage, the task's counters and the step's decision (and, when `completes`, the task's end) in
 * one statement: a retried activity finds the call recorded and adds nothing; a task that ended meanwhile
 * (cancelled) keeps its end.
 */
export async function recordModelCall(
  db: Db,
  call: ModelCallRecord,
  decision: Omit<DecisionInput, 'taskId' | 'step'>,
): Promise<void> {
  const recorded = {
    ctes: `call AS (
            INSERT INTO llm_calls (task_id, step, provider, model, input_tokens, output_tokens, purpose) VALUES ($1,$2,$3,$4,$5,$6,$9)
            ON CONFLICT (task_id, step, purpose) DO NOTHING RETURNING input_tokens, output_tokens
          ), counted AS (
            UPDATE tasks SET steps = GREATEST(steps, $2), updated_at = now(),
              status = CASE WHEN status IN ('completed','failed','cancelled') THEN status WHEN $7 THEN 'completed'
                            WHEN status = 'waiting_for_budget' THEN CASE WHEN $9 = 'review' THEN 'validating' ELSE 'running' END
                            ELSE status END,
              output = CASE WHEN $7 AND status NOT IN ('completed','failed','cancelled') THEN $8::jsonb ELSE output END,
              completed_at = CASE WHEN $7 AND status NOT IN ('completed','failed','cancelled') THEN now() ELSE completed_at END,
              input_tokens = input_tokens + COALESCE((SELECT input_tokens FROM call), 0),
              output_tokens = output_tokens + COALESCE((SELECT output_tokens FROM call), 0)
             WHERE id = $1
          )`,
    params: [
      call.taskId,
      call.step,
      call.provider,
      call.model,
      call.inputTokens,
      call.outputTokens,
      call.completes,
      JSON.stringify({ answer: call.answer }),
      call.purpose ?? 'step',
    ],
  };
  await insertDecision(db, { ...decision, taskId: call.taskId, step: call.step }, recorded);
}
