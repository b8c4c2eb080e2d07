/**
 * Admission at the door, the pure parts: every default on when no option is given
 * (resolveOptions), maxConnections 'auto' from the open-files limit, each limit refusing at
 * the limit and admitting below it, the rate bucket refilling, flapping counted at arrival
 * and its bans expiring, and the bounds of the per-address table, the flapping tables and the
 * ban list. The clock is
 * passed in (a number the test moves), no sockets; the gate-level tests are in
 * admission-gate.test.ts.
 */
import { FlappingDetector, type FlappingLimits } from '../src/admission/flapping';
import { Admission, addressGroup, type AdmissionLimits } from '../src/admission/tables';
import { autoMaxConnections, DEFAULTS, fileDescriptorLimit, FALLBACK_FILE_LIMIT, resolveOptions } from '../src/options';

const OFF: AdmissionLimits = {
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  connectRate: false,
  maxTrackedIps: 100,
  maxBans: 100,
};

function make(limits: Partial<AdmissionLimits>): { a: Admission; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  return { a: new Admission({ ...OFF, ...limits }, () => clock.t), clock };
}

function flapping(limits: Partial<FlappingLimits>): { f: FlappingDetector; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  return { f: new FlappingDetector({ flapping: false, maxTrackedClientIds: 100, maxFlappingBans: 100, ...limits }, () => clock.t), clock };
}

/** A CONNECT that arrives and is accepted at once: what flapping says of it. */
function accepted(f: FlappingDetector, clientId: string): ReturnType<FlappingDetector['arrive']> {
  const v = f.arrive(clientId);
  if (v === undefined) f.settle(clientId, true);
  return v;
}

describe('defaults (resolveOptions with no options)', () => {
  const o = resolveOptions({});
  test('every limit at the door is on', () => {
    expect(o.maxKeepalive).toBe(1200);
    expect(o.maxConnections).toBe(autoMaxConnections());
    expect(o.maxConnections).toBeGreaterThan(0);
    expect(o.maxConnectionsPerIp).toBe(1000);
    expect(o.connectRate).toEqual({ perSecond: 50, burst: 200 });
    expect(o.maxTrackedIps).toBe(100_000);
    expect(o.flapping).toEqual({ maxCount: 15, window: 60_000, banTime: 300_000 });
    expect(o.maxTrackedClientIds).toBe(100_000);
    expect(o.maxBans).toBe(10_000);
    expect(o.maxFlappingBans).toBe(10_000);
    expect(o.banSyncInterval).toBe(5000);
    expect(DEFAULTS.maxConnections).toBe('auto');
  });

  test('each is switched off with 0 or false', () => {
    const off = resolveOptions({ maxKeepalive: 0, maxConnections: 0, maxConnectionsPerIp: 0, connectRate: false, flapping: false });
    expect([off.maxKeepalive, off.maxConnections, off.maxConnectionsPerIp, off.connectRate, off.flapping]).toEqual([0, 0, 0, false, false]);
  });

  test('bad values are a RangeError naming the option', () => {
    expect(() => resolveOptions({ connectRate: { perSecond: 0, burst: 1 } })).toThrow(/connectRate.perSecond/);
    expect(() => resolveOptions({ flapping: { maxCount: 1, window: -1, banTime: 1 } })).toThrow(/flapping.window/);
    expect(() => resolveOptions({ maxConnections: -1 })).toThrow(/maxConnections/);
    expect(() => resolveOptions({ maxBans: 0 })).toThrow(/maxBans/);
    expect(() => resolveOptions({ maxFlappingBans: 0.5 })).toThrow(/maxFlappingBans/);
  });

  test("maxConnections 'auto': the open-files soft limit minus max(64, L/10)", () => {
    const limits =
      'Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 4096                 files     \n';
    expect(fileDescriptorLimit(() => limits)).toBe(1024);
    expect(fileDescriptorLimit(() => 'Max open files            unlimited            unlimited            files\n')).toBe(FALLBACK_FILE_LIMIT);
    expect(
      fileDescriptorLimit(() => {
        throw new Error('ENOENT');
      }),
    ).toBe(FALLBACK_FILE_LIMIT);
    expect(autoMaxConnections(1024)).toBe(921);
    expect(autoMaxConnections(20_000)).toBe(18_000);
    expect(autoMaxConnections(256)).toBe(192);
    expect(autoMaxConnections(10)).toBe(1);
    expect(autoMaxConnections(1_048_576)).toBe(943_718);
  });
});

describe('at accept', () => {
  test('per-address limits count IPv4 addresses one by one and IPv6 by /64 prefix', () => {
    expect(addressGroup('10.0.0.1')).toBe('10.0.0.1');
    expect(addressGroup('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(addressGroup('2001:db8:0:1::5')).toBe('2001:db8:0:1::/64');
    expect(addressGroup('2001:0DB8:0000:0001:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:0:1::/64');
    expect(addressGroup('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressGroup('::1')).toBe('0:0:0:0::/64');
    expect(addressGroup('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    const { a } = make({ maxConnectionsPerIp: 2 });
    expect(a.admit('2001:db8:0:1::1')).toBeUndefined();
    expect(a.admit('2001:db8:0:1::2')).toBeUndefined();
    expect(a.admit('2001:db8:0:1:ffff::3')).toBe('maxConnectionsPerIp'); // same /64, another address
    expect(a.admit('2001:db8:0:2::1')).toBeUndefined();
    a.released('2001:db8:0:1::2');
    expect(a.admit('2001:db8:0:1::9')).toBeUndefined();
  });

  test('maxConnections refuses at the cap and admits again once one is released', () => {
    const { a } = make({ maxConnections: 2 });
    expect(a.admit('10.0.0.1')).toBeUndefined();
    expect(a.admit('10.0.0.2')).toBeUndefined();
    expect(a.admit('10.0.0.3')).toBe('maxConnections');
    a.released('10.0.0.1');
    expect(a.admit('10.0.0.3')).toBeUndefined();
    expect(a.open).toBe(2);
  });

  test('maxConnectionsPerIp counts one address; others are not affected', () => {
    const { a } = make({ maxConnectionsPerIp: 3 });
    for (let i = 0; i < 3; i++) expect(a.admit('10.0.0.1')).toBeUndefined();
    expect(a.admit('10.0.0.1')).toBe('maxConnectionsPerIp');
    expect(a.admit('10.0.0.2')).toBeUndefined();
    a.released('10.0.0.1');
    expect(a.admit('10.0.0.1')).toBeUndefined();
  });

  test('connectRate: burst at once, then perSecond as the bucket refills', () => {
    const { a, clock } = make({ connectRate: { perSecond: 10, burst: 5 } });
    for (let i = 0; i < 5; i++) expect(a.admit('10.0.0.1')).toBeUndefined();
    expect(a.admit('10.0.0.1')).toBe('connectRate');
    expect(a.admit('10.0.0.2')).toBeUndefined(); // its own bucket
    clock.t += 99;
    expect(a.admit('10.0.0.1')).toBe('connectRate');
    clock.t += 1; // 100 ms at 10/s: one token
    expect(a.admit('10.0.0.1')).toBeUndefined();
    expect(a.admit('10.0.0.1')).toBe('connectRate');
    clock.t += 60_000; // refilled to burst, not beyond
    for (let i = 0; i < 5; i++) expect(a.admit('10.0.0.1')).toBeUndefined();
    expect(a.admit('10.0.0.1')).toBe('connectRate');
  });

  test('the per-address table is bounded: idle addresses are evicted oldest first, busy ones are kept', () => {
    const { a } = make({ maxConnectionsPerIp: 10, maxTrackedIps: 3 });
    expect(a.admit('busy')).toBeUndefined();
    for (const ip of ['idle-1', 'idle-2']) {
      expect(a.admit(ip)).toBeUndefined();
      a.released(ip);
    }
    expect(a.trackedIps).toBe(3);
    expect(a.admit('new-1')).toBeUndefined(); // evicts idle-1
    expect(a.admit('new-2')).toBeUndefined(); // evicts idle-2
    expect(a.trackedIps).toBe(3);
    expect(a.admit('new-3')).toBe('maxTrackedIps'); // busy, new-1, new-2 all hold a connection
    expect(a.trackedIps).toBe(3);
    a.released('busy');
    expect(a.admit('new-3')).toBeUndefined();
    expect(a.trackedIps).toBe(3);
  });

  test('sweep drops idle addresses whose bucket is full again', () => {
    const { a, clock } = make({ connectRate: { perSecond: 1, burst: 2 } });
    a.admit('x');
    a.released('x');
    a.sweep();
    expect(a.trackedIps).toBe(1); // one token short: it must remember
    clock.t += 1000;
    a.sweep();
    expect(a.trackedIps).toBe(0);
  });
});

describe('at CONNECT: flapping detection', () => {
  test('the CONNECT past maxCount accepted in window bans the client id for banTime; the ban expires', () => {
    const { f, clock } = flapping({ flapping: { maxCount: 3, window: 10_000, banTime: 5000 } });
    for (let i = 0; i < 3; i++) expect(accepted(f, 'dev-1')).toBeUndefined();
    expect(accepted(f, 'other')).toBeUndefined();
    expect(accepted(f, 'dev-1')).toBe('flapping');
    expect(accepted(f, 'dev-1')).toBe('banned');
    expect(f.list()).toEqual([{ kind: 'clientId', value: 'dev-1', untilMs: clock.t + 5000 }]);
    clock.t += 5000;
    expect(accepted(f, 'dev-1')).toBeUndefined();
    expect(f.list()).toEqual([]);
  });

  test('counted at arrival: past maxCount in flight one more is refused (inFlight), not banned; a refused one is given back', () => {
    const { f } = flapping({ flapping: { maxCount: 2, window: 10_000, banTime: 5000 } });
    expect(f.arrive('x')).toBeUndefined();
    expect(f.arrive('x')).toBeUndefined();
    expect(f.arrive('x')).toBe('inFlight');
    f.settle('x', false); // bad credentials: given back
    expect(f.arrive('x')).toBeUndefined();
    f.settle('x', true);
    f.settle('x', true);
    expect(f.list()).toEqual([]);
    expect(f.arrive('x')).toBe('flapping');
  });

  test('CONNECTs spread over more than the window are not counted together; in-flight ones carry over', () => {
    const { f, clock } = flapping({ flapping: { maxCount: 2, window: 1000, banTime: 5000 } });
    for (let i = 0; i < 10; i++) {
      expect(accepted(f, 'slow')).toBeUndefined();
      clock.t += 600;
    }
    expect(f.trackedClientIds).toBe(1);
    expect(f.arrive('held')).toBeUndefined();
    expect(f.arrive('held')).toBeUndefined();
    clock.t += 1001;
    expect(f.arrive('held')).toBe('inFlight'); // a new window, the two still in flight
    f.sweep();
    expect(f.trackedClientIds).toBe(1); // 'slow' swept, 'held' kept while in flight
  });

  test('the count table is bounded: past maxTrackedClientIds the oldest is forgotten', () => {
    const { f } = flapping({ flapping: { maxCount: 2, window: 60_000, banTime: 5000 }, maxTrackedClientIds: 50 });
    for (let i = 0; i < 1000; i++) accepted(f, `c${i}`);
    expect(f.trackedClientIds).toBe(50);
  });

  test('the ban table is bounded by maxFlappingBans: a new ban evicts the oldest, counted in evicted', () => {
    const { f, clock } = flapping({ flapping: { maxCount: 1, window: 60_000, banTime: 1000 }, maxFlappingBans: 3 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) {
      accepted(f, id);
      expect(accepted(f, id)).toBe('flapping');
      clock.t += 10;
    }
    expect(f.full).toBe(true);
    expect(f.list().map((b) => b.value)).toEqual(['c', 'd', 'e']);
    expect(f.evicted).toBe(2);
    expect(f.unban('d')).toBe(true);
    expect(f.full).toBe(false);
  });
});

describe('bans', () => {
  test('by ip at accept, by client id at CONNECT, by user id at Bind; unban lifts; expiry ends them', () => {
    const { a, clock } = make({});
    a.ban('ip', '10.0.0.9', clock.t + 1000, false);
    a.ban('clientId', 'c1', clock.t + 2000, false);
    a.ban('userId', 'u1', clock.t + 3000, false);
    expect(a.admit('10.0.0.9')).toBe('bannedIp');
    expect(a.admit('10.0.0.8')).toBeUndefined();
    expect(a.connect('c1')).toBe('bannedClientId');
    expect(a.userBanned('u1')).toBe(true);
    expect(a.userBanned('u2')).toBe(false);
    expect(a.unban('clientId', 'c1')).toBe(true);
    expect(a.unban('clientId', 'c1')).toBe(false);
    expect(a.connect('c1')).toBeUndefined();
    clock.t += 1000;
    expect(a.admit('10.0.0.9')).toBeUndefined();
    expect(a.list()).toEqual([{ kind: 'userId', value: 'u1', untilMs: clock.t + 2000 }]);
  });

  test('the ban list is bounded by maxBans: one more throws, expired ones make room, a replaced one does not count twice', () => {
    const { a, clock } = make({ maxBans: 2 });
    a.ban('ip', 'a', clock.t + 100, false);
    a.ban('ip', 'b', clock.t + 10_000, false);
    expect(() => a.ban('ip', 'c', clock.t + 100, false)).toThrow(/maxBans 2/);
    a.ban('ip', 'b', clock.t + 20_000, false); // same target: replaced
    expect(a.list().map((b) => b.value)).toEqual(['a', 'b']);
    clock.t += 100;
    a.ban('ip', 'c', clock.t + 100, false);
    expect(a.list().map((b) => b.value)).toEqual(['c', 'b']);
  });

  test('sync takes the shared list, reports the new bans, and drops shared ones lifted elsewhere (not local ones)', () => {
    const { a, clock } = make({});
    a.ban('ip', 'local', clock.t + 10_000, false);
    const shared = [
      { kind: 'userId' as const, value: 'u', untilMs: clock.t + 5000 },
      { kind: 'clientId' as const, value: 'c', untilMs: clock.t + 6000 },
    ];
    expect(a.sync(shared, clock.t)).toEqual(shared);
    expect(a.sync(shared, clock.t)).toEqual([]); // nothing new
    clock.t += 1;
    expect(a.sync([shared[1]], clock.t)).toEqual([]);
    expect(a.userBanned('u')).toBe(false);
    expect(a.list().map((b) => b.value)).toEqual(['c', 'local']);
    // a shared ban made here after the read began is kept even though the read missed it
    a.ban('userId', 'fresh', clock.t + 1000, true);
    expect(a.sync([], clock.t - 1)).toEqual([]);
    expect(a.userBanned('fresh')).toBe(true);
  });
});
