/**
 * The outbound address policy, without I/O: which addresses and names count as non-public (loopback,
 * private, link-local, unspecified, multicast, cloud metadata), what the operator exempted
 * (OUTBOUND_ALLOW_HOSTS), and the configuration-time check of URLs a tenant stores. The connection-time
 * half, with DNS, is activities/tools/safe-http.ts.
 */
import net, { BlockList } from 'node:net';
import type { Config } from './config';

/** The operator's exemptions from the non-public address refusal, shared by every outbound connection. */
export function outboundAllowHosts(
  config: Pick<Config, 'OUTBOUND_ALLOW_HOSTS' | 'HTTP_ALLOW_PRIVATE_HOSTS'>,
): string[] {
  return [...new Set([...config.OUTBOUND_ALLOW_HOSTS, ...config.HTTP_ALLOW_PRIVATE_HOSTS])];
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

export const hostMatches = (list: readonly string[], url: URL) =>
  list.includes(url.host) || list.includes(url.hostname) || list.includes(bareHost(url));

export const bareHost = (url: URL) =>
  url.hostname
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();

/** What the operator exempted: hosts by name (any port, or one port) and address ranges. */
export interface Exemptions {
  host(url: URL): boolean;
  address(address: string): boolean;
}

export function exemptions(entries: readonly string[]): Exemptions {
  const ranges = new BlockList();
  let anyRange = false;
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    if (slash < 0) continue;
    const base = entry.slice(0, slash);
    const family = net.isIP(base);
    if (!family) continue;
    ranges.addSubnet(base, Number(entry.slice(slash + 1)), family === 4 ? 'ipv4' : 'ipv6');
    anyRange = true;
  }
  return {
    host: (url) => hostMatches(entries, url),
    address: (address) => {
      if (!anyRange) return false;
      const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
      const v4 = net.isIPv4(bare) ? bare : embeddedIpv4(bare);
      return v4 ? ranges.check(v4, 'ipv4') : net.isIPv6(bare) && ranges.check(bare, 'ipv6');
    },
  };
}

/** Names that always mean this machine or a cloud metadata service, whatever DNS says. */
export const SPECIAL_NAMES: [RegExp, string][] = [
  [/^(localhost|localhost\.localdomain|ip6-localhost|ip6-loopback)$|\.localhost$/, 'loopback'],
  [
    /^(metadata|metadata\.google\.internal|metadata\.goog|instance-data|instance-data\.ec2\.internal)$/,
    'cloud metadata',
  ],
];

/**
 * The configuration-time half of the policy, for URLs a tenant stores (MCP servers, webhooks): protocol,
 * and hosts that are non-public without a lookup (IP literals, localhost, metadata names), unless exempted.
 * Names are checked again when they are resolved, at connection time. Returns why the URL is refused.
 */
export function configuredUrlRefusal(url: string, allowHosts: readonly string[]): string | undefined {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return 'not a valid URL';
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:')
    return `unsupported protocol ${target.protocol}; use http or https`;
  const exempt = exemptions(allowHosts);
  if (exempt.host(target)) return undefined;
  const host = bareHost(target);
  if (net.isIP(host)) {
    const kind = nonPublicAddressKind(host);
    return kind && !exempt.address(host)
      ? `${host} is a ${kind} address; only OUTBOUND_ALLOW_HOSTS may be reached at such addresses`
      : undefined;
  }
  const special = SPECIAL_NAMES.find(([pattern]) => pattern.test(host));
  return special
    ? `"${host}" names a ${special[1]} address; only OUTBOUND_ALLOW_HOSTS may be reached at such addresses`
    : undefined;
}
