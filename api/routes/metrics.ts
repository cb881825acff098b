import type { RequestHandler } from 'express';
import type { Registry } from 'prom-client';

/**
 * `GET /metrics` in Prometheus text format. Outside /api/v1 and unauthenticated like /health, as
 * scrapers expect; it exposes counts and durations, never ids, names or content.
 */
export function metricsRoute(registry: Registry): RequestHandler {
  return async (_req, res) => {
    const text = await registry.metrics();
    res.setHeader('Content-Type', registry.contentType);
    res.send(text);
  };
}
