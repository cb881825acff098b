import v8 from 'node:v8';

/**
 * Workflows a worker keeps cached when WORKER_MAX_CACHED_WORKFLOWS is unset: two per MiB of heap limit. An
 * idle agent measured 226 KiB of worker memory (benchmark scenario 4, every agent cached). The SDK's own
 * default, 600 per GiB, assumes far larger workflows: it evicted agents the worker had room for, and an
 * evicted agent replays its whole history before its next task.
 */
export function defaultCachedWorkflows(heapLimitBytes = v8.getHeapStatistics().heap_size_limit): number {
  return Math.max(Math.floor((heapLimitBytes / 2 ** 20) * 2), 100);
}
