import { circuitBreaker, CircuitState, ConsecutiveBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import { workerMetrics, type CircuitStateName } from '../../lib/metrics';
import { ProviderError } from './types';

const STATE_NAMES: Record<CircuitState, CircuitStateName> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half_open',
  [CircuitState.Isolated]: 'open',
};

/**
 * One circuit breaker per provider in this worker process: after `threshold` consecutive availability
 * failures (429, 5xx, timeouts, resets) the circuit opens for `recoveryMs`, during which calls go to the
 * agent's next provider without trying this one; then one trial call decides whether it closes again.
 * Request errors (400, auth, context length) do not count: the provider is up.
 */
export class ProviderCircuits {
  private readonly breakers = new Map<string, CircuitBreakerPolicy>();

  constructor(
    private readonly opts: {
      threshold: number;
      recoveryMs: number;
      onStateChange: (provider: string, state: CircuitStateName, lastError: string | null) => void;
    },
  ) {}

  for(provider: string): CircuitBreakerPolicy {
    let breaker = this.breakers.get(provider);
    if (!breaker) {
      let lastError: string | null = null;
      breaker = circuitBreaker(
        handleWhen((err) => err instanceof ProviderError && err.retryable),
        { halfOpenAfter: this.opts.recoveryMs, breaker: new ConsecutiveBreaker(this.opts.threshold) },
      );
      breaker.onFailure(({ reason }) => {
        if ('error' in reason) lastError = reason.error instanceof Error ? reason.error.message : String(reason.error);
      });
      breaker.onStateChange((state) => {
        workerMetrics.circuitState(provider, STATE_NAMES[state]);
        this.opts.onStateChange(provider, STATE_NAMES[state], lastError);
      });
      workerMetrics.circuitState(provider, 'closed');
      this.breakers.set(provider, breaker);
    }
    return breaker;
  }

  state(provider: string): CircuitStateName {
    const breaker = this.breakers.get(provider);
    return breaker ? STATE_NAMES[breaker.state] : 'closed';
  }
}
