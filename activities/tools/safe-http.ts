/**
 * Outbound HTTP for tools, safe against SSRF. A request may only reach hosts on HTTP_ALLOWED_HOSTS, and
 * never a loopback, private, link-local, unspecified, multicast or cloud-metadata address unless its host
 * is also on HTTP_ALLOW_PRIVATE_HOSTS. Names are resolved first and the socket connects to the address
 * that was checked (a custom `lookup`), so a DNS answer that changes between check and connect
 * (rebinding) cannot slip through. Redirects are followed by hand, each hop checked again; the response
 * is read up to MAX_RESPONSE_BYTES and the whole exchange is bounded in time by the caller's signal.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net, { BlockList } from 'node:net';
import { ToolError } from './registry';

export const MAX_REDIRECTS = 5;
/** Bytes read from a response; the rest is not read at all (the connection is closed). */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

export interface HttpPolicy {
  /** HTTP_ALLOWED_HOSTS: `host` or `host:port`. */
  allowedHosts: readonly string[];
  /** HTTP_ALLOW_PRIVATE_HOSTS: hosts that may resolve to non-public addresses. */
  privateHosts: readonly string[];
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

const ranges: [string, number, 'ipv4' | 'ipv6', string][] = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'private (carrier-grade NAT)'],
  ['169.254.0.0', 16, 'ipv4', 'link-local (cloud metadata)'],
  ['192.0.0.0', 24, 'ipv4', 'reserved'],
  ['198.18.0.0', 15, 'ipv4', 'reserved'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['fc00::', 7, 'ipv6', 'private'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];
const blocked = ranges.map(([address, prefix, family, kind]) => {
  const list = new BlockList();
  list.addSubnet(address, prefix, family);
  return { list, family, kind };
});

/** IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`): check the IPv4 inside. */
function embeddedIpv4(address: string): string | undefined {
  const m = /^(?:::ffff:|64:ff9b::)(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i.exec(address);
  if (!m) return undefined;
  if (m[1]) return m[1];
  const hi = parseInt(m[2]!, 16);
  const lo = parseInt(m[3]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Why an address is not public ('loopback', 'private', …), or undefined for a public address. */
export function nonPublicAddressKind(address: string): string | undefined {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const v4 = net.isIPv4(bare) ? bare : embeddedIpv4(bare);
  const family = v4 ? 'ipv4' : net.isIPv6(bare) ? 'ipv6' : undefined;
  if (!family) return 'not an IP address';
  const ip = v4 ?? bare;
  return blocked.find((b) => b.family === family && b.list.check(ip, family))?.kind;
}

const hostMatches = (list: readonly string[], url: URL) => list.includes(url.host) || list.includes(url.hostname);

/** Refuses a URL outside the allowlist or with a protocol other than http(s). */
function checkUrl(url: URL, policy: HttpPolicy): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ToolError(`unsupported protocol ${url.protocol}; use http or https`);
  if (url.username || url.password) throw new ToolError('URLs with credentials are not allowed');
  if (!hostMatches(policy.allowedHosts, url)) {
    throw new ToolError(`host "${url.host}" is not in the allowlist (${policy.allowedHosts.join(', ') || 'empty'}); add it to HTTP_ALLOWED_HOSTS`);
  }
}

const refusal = (host: string, address: string, kind: string) =>
  new ToolError(`refused: "${host}" is ${address === host ? '' : `resolved to ${address}, `}a ${kind} address; only hosts on HTTP_ALLOW_PRIVATE_HOSTS may reach such addresses`);

/**
 * A `lookup` for http(s).request that resolves every address of the name and refuses the connection
 * when any of them is not public (unless allowed): the socket then connects to exactly what was checked.
 */
function vettedLookup(host: string, allowPrivate: boolean): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { all: true, verbatim: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const bad = allowPrivate ? undefined : addresses.map((a) => ({ a, kind: nonPublicAddressKind(a.address) })).find((x) => x.kind);
      if (bad) return callback(refusal(host, bad.a.address, bad.kind!) as NodeJS.ErrnoException, '', 0);
      const usable = addresses.filter((a) => !options.family || a.family === options.family);
      if (usable.length === 0) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
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
  const target = typeof url === 'string' ? parseUrl(url) : url;
  checkUrl(target, policy);
  const literal = target.hostname.replace(/^\[|\]$/g, '');
  const kind = net.isIP(literal) ? nonPublicAddressKind(literal) : undefined;
  if (kind && !hostMatches(policy.privateHosts, target)) throw refusal(literal, literal, kind);
  return target;
}

/** One request to one URL, no redirects followed. */
function requestOnce(url: URL, policy: HttpPolicy, exchange: Exchange): Promise<SafeResponse> {
  checkAllowedUrl(url, policy);
  const allowPrivate = hostMatches(policy.privateHosts, url);
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, {
      method: exchange.method,
      headers: exchange.headers,
      signal: exchange.signal,
      lookup: vettedLookup(url.hostname, allowPrivate),
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
    const res = await requestOnce(target, policy, { method: 'GET', signal });
    if (![301, 302, 303, 307, 308].includes(res.status) || !res.location) return res;
    if (hop >= MAX_REDIRECTS) throw new ToolError(`too many redirects (more than ${MAX_REDIRECTS}); last one to ${res.location}`);
    target = parseUrl(res.location, target);
  }
}

/**
 * POST that never follows a redirect: the body is a side effect sent at most once, so a 3xx answer is
 * returned to the model (with its location) instead of being replayed somewhere else.
 */
export async function safePost(url: string, body: string, headers: Record<string, string>, policy: HttpPolicy, signal: AbortSignal): Promise<SafeResponse> {
  return requestOnce(parseUrl(url), policy, { method: 'POST', headers, body, signal });
}

function parseUrl(url: string, base?: URL): URL {
  try {
    return new URL(url, base);
  } catch {
    throw new ToolError(`not a valid URL: ${url}`);
  }
}
