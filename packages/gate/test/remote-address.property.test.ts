/**
 * Property tests of the hand-written X-Forwarded-For reading (src/wire/remote-address.ts):
 * whatever a client puts in the header, the address is the socket's unless the socket is a
 * trusted proxy, and then it is an address from the header that is not a trusted proxy.
 */
import { isIP } from 'node:net';
import fc from 'fast-check';
import { normalizeIp, resolveRemoteAddress, trustedSet } from '../src/wire/remote-address';

const ip = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4().map((a) => `::ffff:${a}`),
);
const junk = fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('unknown', '', ' ', '1.2.3', '[::1]', '1.2.3.4:80', '::ffff:'));
const hop = fc.oneof({ weight: 3, arbitrary: ip }, { weight: 1, arbitrary: junk });
const header = fc.oneof(
  fc.array(hop, { maxLength: 6 }).map((h) => h.join(',')),
  fc.array(hop, { maxLength: 6 }).map((h) => h.join(' , ')),
  fc.array(
    fc.array(hop, { maxLength: 3 }).map((h) => h.join(',')),
    { maxLength: 3 },
  ),
  fc.constant(undefined),
);

test('the socket address unless the socket is a trusted proxy; then a header address that is not trusted, or the left-most', () => {
  fc.assert(
    fc.property(ip, header, fc.array(ip, { maxLength: 4 }), fc.boolean(), (peer, forwarded, proxies, peerTrusted) => {
      const trusted = trustedSet(peerTrusted ? [...proxies, peer] : proxies);
      const got = resolveRemoteAddress(peer, forwarded, trusted);
      const socketIp = normalizeIp(peer);
      const hops = (Array.isArray(forwarded) ? forwarded.join(',') : (forwarded ?? ''))
        .split(',')
        .map((h) => normalizeIp(h.trim()))
        .filter((h) => isIP(h) !== 0);
      if (!trusted.has(socketIp) || forwarded === undefined || forwarded.length === 0) {
        expect(got).toBe(socketIp);
      } else if (hops.length === 0) {
        expect(got).toBe(socketIp);
      } else {
        expect(hops).toContain(got);
        const untrusted = hops.filter((h) => !trusted.has(h));
        if (untrusted.length) expect(got).toBe(untrusted[untrusted.length - 1]);
        else expect(got).toBe(hops[0]);
      }
      expect(got.startsWith('::ffff:') && isIP(got.slice(7)) === 4).toBe(false);
      expect(got).not.toMatch(/[\s,]/);
    }),
    { numRuns: 2000 },
  );
});

test('arbitrary strings as peer and header never throw and give a string', () => {
  fc.assert(
    fc.property(
      fc.option(fc.string(), { nil: undefined }),
      fc.option(fc.oneof(fc.string(), fc.array(fc.string())), { nil: undefined }),
      fc.array(fc.string(), { maxLength: 3 }),
      (peer, forwarded, proxies) => {
        expect(typeof resolveRemoteAddress(peer, forwarded, trustedSet(proxies))).toBe('string');
      },
    ),
    { numRuns: 1000 },
  );
});

test('an IPv4-mapped address is the IPv4 address; anything else is unchanged', () => {
  fc.assert(
    fc.property(fc.ipV4(), fc.ipV6(), fc.string(), (v4, v6, s) => {
      expect(normalizeIp(`::ffff:${v4}`)).toBe(v4);
      expect(normalizeIp(v4)).toBe(v4);
      if (!v6.startsWith('::ffff:')) expect(normalizeIp(v6)).toBe(v6);
      if (!s.startsWith('::ffff:')) expect(normalizeIp(s)).toBe(s);
    }),
  );
});
