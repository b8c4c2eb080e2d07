import { isIP } from 'node:net';

/** `::ffff:1.2.3.4` → `1.2.3.4`; other addresses unchanged. */
export function normalizeIp(ip: string | undefined): string {
  if (!ip) return '';
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/**
 * The client's address. The socket peer's, unless that peer is a trusted proxy and sent
 * `X-Forwarded-For`: then the right-most address in the header that is not itself a
 * trusted proxy (the left-most entries are whatever the client claimed).
 * Fixes mqant, which trusts the header from any private address and cuts IPv6 at the
 * first colon (utils/ip/iptool.go). No port, in either case.
 */
export function resolveRemoteAddress(peer: string | undefined, forwardedFor: string | string[] | undefined, trusted: ReadonlySet<string>): string {
  const socketIp = normalizeIp(peer);
  if (!forwardedFor || !trusted.has(socketIp)) return socketIp;
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
  const hops = header
    .split(',')
    .map((h) => normalizeIp(h.trim()))
    .filter((h) => isIP(h) !== 0);
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!trusted.has(hops[i])) return hops[i];
  }
  return hops[0] ?? socketIp;
}

/** The trusted-proxy list as a set, IPv4-mapped forms normalized. */
export function trustedSet(list: readonly string[]): ReadonlySet<string> {
  return new Set(list.map((ip) => normalizeIp(ip)));
}
