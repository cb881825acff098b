import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import type { Registry } from 'prom-client';
import type { TemporalGateway } from '../../client/gateway';
import type { KeyVerifier } from '../auth';
import { HttpError } from '../errors';
import type { Store } from '../store';

export interface MetricsRouteOptions {
  /** Verifies API keys, as for /api/v1: a key of `adminOrgId` may scrape. */
  apiKeys: KeyVerifier;
  adminOrgId: string;
  /** METRICS_TOKEN: a bearer token good for /metrics only (what Prometheus is given). */
  token?: string;
  /** METRICS_CACHE_SECONDS: the gauges are read from Postgres at most this often; 0 reads on every scrape. */
  cacheSeconds: number;
}

const BEARER = /^Bearer[ ]+([\x21-\x7e]{1,200})[ ]*$/i;
const digest = (value: string) => createHash('sha256').update(value).digest();

/** The bearer credential of a request, or undefined. */
function bearer(req: Request): string | undefined {
  const header = req.headers.authorization;
  return header ? BEARER.exec(header)?.[1] : undefined;
}

/** True when `presented` is METRICS_TOKEN or a key of the operators' organisation. */
async function mayScrape(
  presented: string | undefined,
  opts: Pick<MetricsRouteOptions, 'apiKeys' | 'adminOrgId' | 'token'>,
): Promise<boolean> {
  if (presented === undefined) return false;
  // Compared as digests: equal length, so the comparison time says nothing about the token.
  if (opts.token && timingSafeEqual(digest(presented), digest(opts.token))) return true;
  return (await opts.apiKeys(presented))?.orgId === opts.adminOrgId;
}

/**
 * `GET /metrics` in Prometheus text format. The gauges count every organisation's agents and tasks, so
 * it needs METRICS_TOKEN or a key of the operators' organisation (ADMIN_ORG_ID) as
 * `Authorization: Bearer …`. Collecting runs aggregates over whole tables; scrapes within
 * `cacheSeconds` of the last collection share its text, so scrapers cannot make the database do more.
 */
export function metricsRoute(registry: Registry, opts: MetricsRouteOptions): RequestHandler {
  let cached: { text: string; at: number } | undefined;
  let inFlight: Promise<string> | undefined;
  const collect = () => {
    inFlight ??= registry
      .metrics()
      .then((text) => {
        cached = { text, at: Date.now() };
        return text;
      })
      .finally(() => (inFlight = undefined));
    return inFlight;
  };
  return async (req, res) => {
    if (!(await mayScrape(bearer(req), opts))) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      throw new HttpError(
        401,
        'unauthorized',
        '/metrics needs "Authorization: Bearer <METRICS_TOKEN>" or an API key of the operators\' organisation (ADMIN_ORG_ID)',
      );
    }
    const fresh = cached && Date.now() - cached.at < opts.cacheSeconds * 1000;
    const text = fresh ? cached!.text : await collect();
    res.setHeader('Content-Type', registry.contentType);
    res.setHeader('Cache-Control', 'no-store');
    res.send(text);
  };
}

export interface HealthDeps {
  store: Pick<Store, 'ping' | 'openCircuits'>;
  gateway: Pick<TemporalGateway, 'serverInfo'>;
  apiKeys: KeyVerifier;
  config: { readonly ADMIN_ORG_ID?: string; readonly DEFAULT_ORG_ID: string };
}

/** How long one round of checks answers every /health caller. */
const HEALTH_CACHE_MS = 1000;

/**
 * `GET /health`: open, for load balancers and orchestrators. A ping of Postgres and of Temporal, shared
 * by all callers within a second, so a flood of anonymous requests costs the backends almost nothing.
 * Open provider circuits (with their last error) are internals: only a key of the operators' organisation
 * sees them.
 */
export function healthRoute(deps: HealthDeps): RequestHandler {
  const adminOrg = deps.config.ADMIN_ORG_ID ?? deps.config.DEFAULT_ORG_ID;
  let last: { at: number; checks: Promise<{ postgres: 'ok' | 'down'; temporal: 'ok' | 'down' }> } | undefined;
  const check = async () => {
    const [postgres, temporal] = await Promise.allSettled([deps.store.ping(), deps.gateway.serverInfo()]);
    return {
      postgres: postgres.status === 'fulfilled' ? 'ok' : 'down',
      temporal: temporal.status === 'fulfilled' ? 'ok' : 'down',
    } as const;
  };
  return async (req, res) => {
    if (!last || Date.now() - last.at > HEALTH_CACHE_MS) last = { at: Date.now(), checks: check() };
    const checks = await last.checks;
    const healthy = checks.postgres === 'ok' && checks.temporal === 'ok';
    const body: Record<string, unknown> = { status: healthy ? 'ok' : 'degraded', checks };
    const presented = bearer(req);
    if (
      presented !== undefined &&
      checks.postgres === 'ok' &&
      (await deps.apiKeys(presented).catch(() => undefined))?.orgId === adminOrg
    ) {
      body.providers = { openCircuits: await deps.store.openCircuits().catch(() => []) };
    }
    res.status(healthy ? 200 : 503).json(body);
  };
}
