/**
 * Failure type names used across activity and workflow boundaries. These strings travel inside
 * Temporal failures and are matched by retry policies (`nonRetryableErrorTypes`), so they never change
 * once shipped and never depend on class names.
 */
export const ErrorType = {
  /** The provider rejected our credentials (401/403). Retrying cannot help. */
  ProviderAuth: 'ProviderAuthError',
  /** The provider rejected the request as malformed (400). */
  ProviderInvalidRequest: 'ProviderInvalidRequestError',
  /** The prompt does not fit the model's context window. */
  ProviderContextLength: 'ProviderContextLengthError',
  /** The model refused to answer. */
  ProviderRefusal: 'ProviderRefusalError',
  /** 429: retryable, honouring retry-after through `nextRetryDelay`. */
  ProviderRateLimited: 'ProviderRateLimitedError',
  /** 5xx, reset connections and timeouts: retryable. */
  ProviderUnavailable: 'ProviderUnavailableError',
  /** The agent or its provider is misconfigured (unknown provider, missing key). */
  Configuration: 'ConfigurationError',
  /** A task ran past its step limit or its time limit. */
  TaskLimit: 'TaskLimitError',
  /** An approval request lapsed without a decision and the agent is configured to fail. */
  ApprovalExpired: 'ApprovalExpiredError',
  /** A delegated task would exceed the delegation depth fuse. */
  DelegationDepth: 'DelegationDepthError',
  /** A transition that the current state does not allow (e.g. resume an archived agent). */
  InvalidTransition: 'InvalidTransitionError',
  /** A step must wait for a budget, a step slot or a resource bucket; the workflow sleeps and asks again. */
  AdmissionWait: 'AdmissionWait',
  /** A runaway fuse refused the work: sub-tasks per task, pending tasks per org. */
  LimitReached: 'LimitReachedError',
  /** The database refuses a value for good (e.g. a lone surrogate in JSON): retrying cannot store it. */
  Unstorable: 'UnstorableValueError',
  /** The task's answer failed its output check (`validation`) as many times as it may. */
  ValidationFailed: 'ValidationFailedError',
  /**
   * A decision names an approval request the task is not waiting on (yet): after a worker crash the task
   * may still be re-running the step that opened it. Only a validator throws it; nothing is recorded.
   */
  ApprovalNotPending: 'ApprovalNotPendingError',
  /** Referenced entity does not exist. */
  NotFound: 'NotFoundError',
} as const;

export type ErrorTypeName = (typeof ErrorType)[keyof typeof ErrorType];
