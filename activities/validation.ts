import type { OutputVerdict, TaskValidation } from '../contract/definitions';
import { answerJson, checkExpectedOutput } from '../lib/output-check';
import { decisionResult, insertDecision } from '../lib/records/decisions';
import { recordModelCall } from '../lib/records/llm-calls';
import { setTaskStatus } from '../lib/records/tasks';
import { OUTPUT_REVIEW_MARKER } from './llm/offline';
import type { StepDeps, StepOwner, StepRunner } from './steps';

export interface ValidateOutputInput {
  taskId: string;
  /** The step whose final answer is checked; the check is recorded at (step, seq 1). */
  step: number;
  /** 1-based: the how-manieth check of this task's answers. */
  attempt: number;
  /** No check follows this one (the last attempt, or the last step): a failure fails the task. */
  lastCheck: boolean;
  title: string;
  answer: string;
  validation: TaskValidation;
  owner: StepOwner;
  provider: string | null;
  fallbackProviders: string[];
  model: string | null;
}

/** Where a step's check is recorded: after the answer's own decision (seq 0); a final answer has no tool calls. */
const CHECK_SEQ = 1;
const CHECK_DECISION = 'validate';

/**
 * The validating stage of a task: its final answer against `expectedOutput` (a JSON Schema, checked here)
 * and `acceptanceCriteria` (judged by a model call through the same budgets and step slots as the task's
 * own calls, and counted in its tokens). The schema goes first: an answer that is not even well formed is
 * not worth a review. The verdict is recorded as a `validate` decision; a retried activity returns the
 * recorded verdict instead of judging again.
 */
export function createValidationActivities(deps: StepDeps & { runner: StepRunner }) {
  const { db } = deps;

  return {
    async validateOutput(input: ValidateOutputInput): Promise<OutputVerdict> {
      const at = { taskId: input.taskId, step: input.step, seq: CHECK_SEQ, type: CHECK_DECISION };
      // A failed check that leaves another goes back to the model: the task works again. (A passed or last
      // check ends the task, which records its end.)
      const settled = async (v: OutputVerdict) => {
        if (!v.passed && !input.lastCheck) await setTaskStatus(db, input.taskId, 'running');
        return v;
      };
      const recorded = (await decisionResult(db, at)) as OutputVerdict | undefined;
      if (recorded) return await settled(recorded);
      await setTaskStatus(db, input.taskId, 'validating');
      const { expectedOutput, acceptanceCriteria, maxAttempts } = input.validation;
      let verdict: OutputVerdict = { passed: true, reasons: [] };
      if (expectedOutput) {
        const { reasons, output } = schemaCheck(input.answer, expectedOutput);
        verdict = { passed: reasons.length === 0, reasons, ...(output !== undefined ? { output } : {}) };
      }
      const checks = [expectedOutput ? 'expectedOutput' : null, acceptanceCriteria ? 'acceptanceCriteria' : null];
      const decision = (v: OutputVerdict) => ({
        ...at,
        reasoning: v.passed
          ? `The answer passed its check (attempt ${input.attempt} of ${maxAttempts})`
          : `The answer failed its check (attempt ${input.attempt} of ${maxAttempts}): ${v.reasons.join('; ')}`,
        action: { attempt: input.attempt, maxAttempts, checks: checks.filter(Boolean) },
        result: v,
        confidence: null,
      });
      if (!verdict.passed || !acceptanceCriteria) {
        await insertDecision(db, decision(verdict));
        return await settled(verdict);
      }
      const reply = await deps.runner.governedModelCall(
        {
          taskId: input.taskId,
          step: input.step,
          owner: input.owner,
          provider: input.provider,
          fallbackProviders: input.fallbackProviders,
          model: input.model,
          messages: reviewMessages(input.title, acceptanceCriteria, input.answer),
          toolNames: [],
        },
        { purpose: 'review' },
      );
      const judged = readVerdict(reply.content);
      verdict = { ...verdict, passed: judged.passed, reasons: judged.reasons };
      await recordModelCall(
        db,
        {
          taskId: input.taskId,
          step: input.step,
          purpose: 'review',
          provider: reply.provider,
          model: reply.model,
          inputTokens: reply.usage.inputTokens,
          outputTokens: reply.usage.outputTokens,
          completes: false,
          answer: reply.content,
        },
        decision(verdict),
      );
      return await settled(verdict);
    },
  };
}

/** A schema the API accepted but this worker cannot use (another version) fails the check, saying why. */
function schemaCheck(answer: string, schema: Record<string, unknown>): { reasons: string[]; output?: unknown } {
  try {
    return checkExpectedOutput(answer, schema);
  } catch (err) {
    return { reasons: [`the expected output schema cannot be used: ${(err as Error).message}`] };
  }
}

function reviewMessages(title: string, criteria: string, answer: string) {
  return [
    {
      role: 'system' as const,
      content:
        'You review answers strictly against the acceptance criteria given, and nothing else. ' +
        'Reply with JSON only: {"pass": true|false, "reasons": ["…"]}, one reason per criterion the answer does not meet.',
    },
    {
      role: 'user' as const,
      content: `${OUTPUT_REVIEW_MARKER}\nThe task: ${title}\n<criteria>\n${criteria}\n</criteria>\n<answer>\n${answer}\n</answer>`,
    },
  ];
}

/** The reviewer's verdict; one that cannot be read is a failed check that says so (the attempts are bounded). */
export function readVerdict(content: string): { passed: boolean; reasons: string[] } {
  const parsed = answerJson(content) as { pass?: unknown; passed?: unknown; reasons?: unknown } | undefined;
  const pass = parsed && typeof parsed === 'object' ? (parsed.pass ?? parsed.passed) : undefined;
  if (typeof pass !== 'boolean') {
    const excerpt = content.length > 200 ? `${content.slice(0, 200)}…` : content;
    return { passed: false, reasons: [`the reviewer's verdict could not be read: ${excerpt}`] };
  }
  const reasons = Array.isArray(parsed!.reasons) ? parsed!.reasons.filter((r) => typeof r === 'string') : [];
  if (!pass && reasons.length === 0) reasons.push('the reviewer found the acceptance criteria not met');
  return { passed: pass, reasons: pass ? [] : reasons.slice(0, 10) };
}
