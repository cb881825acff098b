import { ApplicationFailure } from '@temporalio/activity';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import { ErrorType } from '../contract/errors';

/**
 * PostgreSQL errors no retry can fix: the value itself is refused (class 22, data exceptions such as an
 * unsupported Unicode escape or a value out of range; 54000, a value over a size limit). Records retry
 * until they succeed, so without this one bad value would retry forever and hold back the agent's later
 * writes, which run in turn behind it.
 */
function isPermanentDataError(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22[0-9A-Z]{3}|54000)$/.test(code) && err instanceof Error;
}

/** Turns a permanent data error into a non-retryable failure of type Unstorable; the workflow fails the task with it. */
export class UnstorableValueInterceptor implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (err) {
      if (!isPermanentDataError(err)) throw err;
      throw ApplicationFailure.create({
        type: ErrorType.Unstorable,
        message: `the database refused a value (${err.code}): ${err.message}`,
        nonRetryable: true,
      });
    }
  }
}
