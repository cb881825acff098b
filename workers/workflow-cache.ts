import v8 from 'node:v8';

/**
 * Workflows a worker keeps cached: WORKER_MAX_CACHED_WORKFLOWS, else two per MiB of heap limit. An idle agent
 * measured 226 KiB of worker memory (benchmark scenario 4, every agent cached). The SDK's own default, 600 per
 * GiB, assumes far larger workflows: it evicted agents the worker had room for, and an evicted agent replays
 * its whole history before its next task.
 */
export function cachedWorkflows(
  config: { WORKER_MAX_CACHED_WORKFLOWS?: number },
  heapLimitBytes = v8.getHeapStatistics().heap_size_limit,
): number {
  return config.WORKER_MAX_CACHED_WORKFLOWS ?? Math.max(Math.floor((heapLimitBytes / 2 ** 20) * 2), 100);
}
