/**
 * Outbound connections made for tenants, safe against SSRF: the one address policy for the http tools, MCP
 * HTTP servers and webhooks. Nothing may reach a loopback, private, link-local, unspecified, multicast or
 * cloud-metadata address unless the operator exempted its host or address range (OUTBOUND_ALLOW_HOSTS);
 * the http tools may in addition only reach hosts on HTTP_ALLOWED_HOSTS. Names are resolved first and the
 * socket connects to the address that was checked (a custom `lookup`), so a DNS answer that changes between
 * check and connect (rebinding) cannot slip through. Redirects are followed by hand, each hop checked again
 * (POSTs and webhooks follow none); the response is read up to MAX_RESPONSE_BYTES and the whole exchange is
 * bounded in time by the caller's signal. `configuredUrlRefusal` is the same policy at configuration time,
 * for what can be told without DNS.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Readable } from 'node:stream';
import { exemptions, hostMatches, nonPublicAddressKind, type Exemptions } from '../../lib/outbound-policy';
import { ToolError } from './registry';

export const MAX_REDIRECTS = 5;
/** Bytes read from a response; the rest is not read at all (the connection is closed). */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface HttpPolicy {
  /** HTTP_ALLOWED_HOSTS: `host` or `host:port`. */
  allowedHosts: readonly string[];
  /** OUTBOUND_ALLOW_HOSTS: hosts (`host`, `host:port`) or CIDRs that may be reached at non-public addresses. */
  privateHosts: readonly string[];
}

/** A connection the address policy refused: permanent for this URL, and nothing was sent. */
export class OutboundRefusedError extends ToolError {
  override name = 'OutboundRefusedError';
}

export interface SafeResponse {
  status: number;
  contentType: string | null;
  body: string;
  /** True when the body was longer than MAX_RESPONSE_BYTES and reading stopped. */
  truncated: boolean;
  /** The URL that answered, after redirects. */
  url: string;
  location?: string;
}

/** Refuses a URL outside the allowlist (when there is one) or with a protocol other than http(s). */
function checkUrl(url: URL, allowedHosts: readonly string[] | undefined): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ToolError(`unsupported protocol ${url.protocol}; use http or https`);
  if (url.username || url.password) throw new ToolError('URLs with credentials are not allowed');
  if (allowedHosts && !hostMatches(allowedHosts, url)) {
    throw new ToolError(
      `host "${url.host}" is not in the allowlist (${allowedHosts.join(', ') || 'empty'}); add it to HTTP_ALLOWED_HOSTS`,
    );
  }
}

const refusal = (host: string, address: string, kind: string) =>
  new OutboundRefusedError(
    `refused: "${host}" is ${address === host ? '' : `resolved to ${address}, `}a ${kind} address; only hosts on OUTBOUND_ALLOW_HOSTS may reach such addresses`,
  );

/** Refuses an IP-literal host that is not public (literals are never looked up, so the lookup cannot check them). */
function checkLiteral(url: URL, exempt: Exemptions): void {
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  const kind = net.isIP(literal) ? nonPublicAddressKind(literal) : undefined;
  if (kind && !exempt.host(url) && !exempt.address(literal)) throw refusal(literal, literal, kind);
}

/**
 * A `lookup` for http(s).request that resolves every address of the name and refuses the connection
 * when any of them is not public (unless exempted): the socket then connects to exactly what was checked.
 */
function vettedLookup(url: URL, exempt: Exemptions): net.LookupFunction {
  const host = url.hostname;
  const allowHost = exempt.host(url);
  return (hostname, options, callback) => {
    dns.lookup(hostname, { all: true, verbatim: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const bad = allowHost
        ? undefined
        : addresses
            .map((a) => ({ a, kind: nonPublicAddressKind(a.address) }))
            .find((x) => x.kind && !exempt.address(x.a.address));
      if (bad) return callback(refusal(host, bad.a.address, bad.kind!) as NodeJS.ErrnoException, '', 0);
      const usable = addresses.filter((a) => !options.family || a.family === options.family);
      if (usable.length === 0)
        return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
      if (options.all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, usable);
      callback(null, usable[0]!.address, usable[0]!.family);
    });
  };
}

interface Exchange {
  method: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}

/**
 * The checks that need no network: protocol, allowlist, and the address itself when the host is an IP
 * literal (literals are never looked up). Names are checked when they are resolved, at connect time.
 */
export function checkAllowedUrl(url: string | URL, policy: HttpPolicy): URL {
  return checkTarget(url, policy.allowedHosts, exemptions(policy.privateHosts));
}

function checkTarget(url: string | URL, allowedHosts: readonly string[] | undefined, exempt: Exemptions): URL {
  const target = typeof url === 'string' ? parseUrl(url) : url;
  checkUrl(target, allowedHosts);
  checkLiteral(target, exempt);
  return target;
}

/** One request to one URL, no redirects followed; `allowedHosts` undefined: any host the address policy lets through. */
function requestOnce(
  url: URL,
  allowedHosts: readonly string[] | undefined,
  privateHosts: readonly string[],
  exchange: Exchange,
): Promise<SafeResponse> {
  const exempt = exemptions(privateHosts);
  checkTarget(url, allowedHosts, exempt);
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, {
      method: exchange.method,
      headers: exchange.headers,
      signal: exchange.signal,
      lookup: vettedLookup(url, exempt),
      // A fresh connection per request: a pooled socket would skip the lookup.
      agent: false,
    });
    const failed = (what: string) => (err: Error) => {
      if (err instanceof ToolError) return reject(err);
      // Cancellation of the activity propagates as is; a timeout is a result the model can read.
      if (exchange.signal.aborted) {
        const reason = exchange.signal.reason as Error | undefined;
        return reject(reason?.name === 'TimeoutError' ? new ToolError(`request to ${url.host} timed out`) : err);
      }
      reject(new ToolError(`${what} ${url.host} failed: ${err.message}`));
    };
    req.on('error', failed('request to'));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      const finish = () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: res.headers['content-type'] ?? null,
          body: Buffer.concat(chunks).toString('utf8'),
          truncated,
          url: url.href,
          ...(res.headers.location ? { location: res.headers.location } : {}),
        });
      res.on('data', (chunk: Buffer) => {
        if (truncated) return;
        const room = MAX_RESPONSE_BYTES - size;
        chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
        size += Math.min(chunk.length, room);
        if (chunk.length > room) {
          // Enough: stop reading and close the connection instead of downloading the rest.
          truncated = true;
          res.destroy();
          finish();
        }
      });
      res.on('end', finish);
      res.on('error', (err) => (truncated ? undefined : failed('reading the response of')(err)));
    });
    req.end(exchange.body);
  });
}

/** GET that follows up to MAX_REDIRECTS redirects, checking every hop like the first request. */
export async function safeGet(url: string, policy: HttpPolicy, signal: AbortSignal): Promise<SafeResponse> {
  let target = parseUrl(url);
  for (let hop = 0; ; hop++) {
    const res = await requestOnce(target, policy.allowedHosts, policy.privateHosts, { method: 'GET', signal });
    if (![301, 302, 303, 307, 308].includes(res.status) || !res.location) return res;
    if (hop >= MAX_REDIRECTS)
      throw new ToolError(`too many redirects (more than ${MAX_REDIRECTS}); last one to ${res.location}`);
    target = parseUrl(res.location, target);
  }
}

/**
 * POST that never follows a redirect: the body is a side effect sent at most once, so a 3xx answer is
 * returned to the model (with its location) instead of being replayed somewhere else.
 */
export async function safePost(
  url: string,
  body: string,
  headers: Record<string, string>,
  policy: HttpPolicy,
  signal: AbortSignal,
): Promise<SafeResponse> {
  return requestOnce(parseUrl(url), policy.allowedHosts, policy.privateHosts, {
    method: 'POST',
    headers,
    body,
    signal,
  });
}

/**
 * A webhook POST: any host the address policy lets through (the URL is the agent's configuration, not a
 * model's choice), and no redirect followed, so a redirect cannot lead it to a refused address.
 */
export async function postWebhook(
  url: string,
  body: string,
  headers: Record<string, string>,
  allowHosts: readonly string[],
  signal: AbortSignal,
): Promise<SafeResponse> {
  return requestOnce(parseUrl(url), undefined, allowHosts, { method: 'POST', headers, body, signal });
}

/**
 * A `fetch` for clients that bring their own HTTP handling (the MCP SDK's Streamable HTTP transport): the
 * same address policy, a fresh vetted connection per request, redirects returned rather than followed (a
 * client that follows one calls this again, so every hop is checked), the response body streamed.
 */
export function policedFetch(
  allowHosts: readonly string[],
): (url: string | URL, init?: RequestInit) => Promise<Response> {
  const exempt = exemptions(allowHosts);
  return async (input, init = {}) => {
    const url = checkTarget(String(input), undefined, exempt);
    if (init.body != null && typeof init.body !== 'string')
      throw new TypeError('policedFetch sends string bodies only');
    const method = (init.method ?? 'GET').toUpperCase();
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, key) => (headers[key] = value));
    const client = url.protocol === 'https:' ? https : http;
    return new Promise<Response>((resolve, reject) => {
      const req = client.request(url, {
        method,
        headers,
        signal: init.signal ?? undefined,
        lookup: vettedLookup(url, exempt),
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const answer = new Headers();
        for (const [key, value] of Object.entries(res.headers)) {
          for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) answer.append(key, v);
        }
        const status = res.statusCode ?? 502;
        const empty = method === 'HEAD' || status === 204 || status === 304;
        if (empty) res.resume();
        resolve(
          new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
            status,
            statusText: res.statusMessage,
            headers: answer,
          }),
        );
      });
      req.end(init.body ?? undefined);
    });
  };
}

function parseUrl(url: string, base?: URL): URL {
  try {
    return new URL(url, base);
  } catch {
    throw new ToolError(`not a valid URL: ${url}`);
  }
}
