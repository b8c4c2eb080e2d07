import type { DuplicateLoginPolicy, LiveGate, UserIndex, UserLocation } from './user-index';

/** What a {@link UserIndexFactory} resolves: two handles on one store (two gates' views), and how to dispose of them. */
export interface UserIndexUnderTest {
  /** The index as gate A sees it. */
  index: UserIndex;
  /** The same store as another gate sees it (a second client); may be `index` itself for an in-memory one. */
  other: UserIndex;
  /** Called once after each test (close clients, remove keys). */
  cleanup?: () => Promise<void>;
}

/** Makes a fresh pair of handles on one empty store; called before each test. */
export type UserIndexFactory = () => Promise<UserIndexUnderTest>;

/**
 * Registers a jest `describe` block, `UserIndex conformance: <name>`, checking the contract
 * the gate's duplicate-login handling relies on: claim records an entry that `locate` (on
 * either handle) returns; `allow` keeps every session up to `maxSessionsPerUser`, then
 * `onLimit`; `kick-old` returns the oldest session(s) to close and drops them; `reject-new`
 * rejects with the existing sessions and records nothing; re-claiming the same session
 * counts once; release (also of a missing entry); entries of gates not live are ignored
 * (and come back when the gate does); entries recorded before their gate's current run are
 * dropped; 20 racing `reject-new` claims from 20 gates accept exactly one; user ids with
 * `|`, `:`, `{}`, spaces and unicode; the optional `epoch` and `reassert` (both or neither);
 * and, when the index has the optional ban capability, bans made on one handle
 * listed on the other, replaced, lifted, expired, bounded by `limit`. Takes well under a second.
 */
export function describeUserIndex(name: string, factory: UserIndexFactory): void {
  describe(`UserIndex conformance: ${name}`, () => {
    let u: UserIndexUnderTest;
    const t0 = Date.now() - 60_000;
    const gates = (...ids: string[]): LiveGate[] => ids.map((serverId) => ({ serverId, startedAt: t0 }));
    const at = (serverId: string, sessionId: string, since: number): UserLocation => ({ serverId, sessionId, since });
    const sorted = (l: UserLocation[]) => [...l].sort((a, b) => a.since - b.since || a.serverId.localeCompare(b.serverId));
    const allow: DuplicateLoginPolicy = { policy: 'allow' };
    const live = gates('gate@a', 'gate@b', 'gate@c');

    beforeEach(async () => {
      u = await factory();
    });
    afterEach(async () => {
      await u.cleanup?.();
    });

    it('claim records the entry; locate on either handle returns it; release removes it (a missing one too)', async () => {
      const e = at('gate@a', 's1', t0 + 1);
      await expect(u.index.claim('alice', e, allow, live)).resolves.toEqual({ rejected: false, kick: [] });
      expect(await u.index.locate('alice', live)).toEqual([e]);
      expect(await u.other.locate('alice', live)).toEqual([e]);
      await u.other.release('alice', 'gate@a', 's1');
      expect(await u.index.locate('alice', live)).toEqual([]);
      await expect(u.index.release('alice', 'gate@a', 's1')).resolves.toBeUndefined();
      await expect(u.index.release('nobody', 'gate@a', 'x')).resolves.toBeUndefined();
      expect(await u.index.locate('nobody', live)).toEqual([]);
    });

    it('allow keeps every session; with maxSessionsPerUser, onLimit kick-old kicks the oldest and reject-new rejects', async () => {
      for (let i = 1; i <= 3; i++) await u.index.claim('bob', at(i % 2 ? 'gate@a' : 'gate@b', `s${i}`, t0 + i), allow, live);
      expect(sorted(await u.other.locate('bob', live)).map((l) => l.sessionId)).toEqual(['s1', 's2', 's3']);
      const capped: DuplicateLoginPolicy = { policy: 'allow', maxSessionsPerUser: 3 };
      const kicked = await u.other.claim('bob', at('gate@c', 's4', t0 + 4), capped, live);
      expect(kicked).toEqual({ rejected: false, kick: [at('gate@a', 's1', t0 + 1)] });
      expect(sorted(await u.index.locate('bob', live)).map((l) => l.sessionId)).toEqual(['s2', 's3', 's4']);
      const rejected = await u.index.claim('bob', at('gate@c', 's5', t0 + 5), { ...capped, onLimit: 'reject-new' }, live);
      expect(rejected.rejected).toBe(true);
      expect(sorted(rejected.rejected ? rejected.existing : []).map((l) => l.sessionId)).toEqual(['s2', 's3', 's4']);
      expect(await u.index.locate('bob', live)).toHaveLength(3);
    });

    it('kick-old returns the older session (on another gate) to close and keeps only the new one', async () => {
      const old = at('gate@a', 'old', t0 + 1);
      await u.index.claim('carol', old, { policy: 'kick-old' }, live);
      const r = await u.other.claim('carol', at('gate@b', 'new', t0 + 2), { policy: 'kick-old' }, live);
      expect(r).toEqual({ rejected: false, kick: [old] });
      expect(await u.index.locate('carol', live)).toEqual([at('gate@b', 'new', t0 + 2)]);
    });

    it('reject-new rejects with the existing session and records nothing', async () => {
      const first = at('gate@a', 'first', t0 + 1);
      await u.index.claim('dave', first, { policy: 'reject-new' }, live);
      const r = await u.other.claim('dave', at('gate@b', 'second', t0 + 2), { policy: 'reject-new' }, live);
      expect(r).toEqual({ rejected: true, existing: [first] });
      expect(await u.index.locate('dave', live)).toEqual([first]);
    });

    it('claiming the same session again counts it once', async () => {
      const e = at('gate@a', 's', t0 + 1);
      await u.index.claim('erin', e, { policy: 'reject-new' }, live);
      await expect(u.index.claim('erin', { ...e, since: t0 + 2 }, { policy: 'reject-new' }, live)).resolves.toEqual({ rejected: false, kick: [] });
      expect(await u.index.locate('erin', live)).toHaveLength(1);
    });

    it('entries of a gate that is not live are ignored, and count again when it is back', async () => {
      const onA = at('gate@a', 'sa', t0 + 1);
      await u.index.claim('fay', onA, { policy: 'reject-new' }, live);
      const withoutA = gates('gate@b', 'gate@c');
      expect(await u.index.locate('fay', withoutA)).toEqual([]);
      await expect(u.other.claim('fay', at('gate@b', 'sb', t0 + 2), { policy: 'allow' }, withoutA)).resolves.toEqual({ rejected: false, kick: [] });
      expect(sorted(await u.index.locate('fay', live))).toEqual([onA, at('gate@b', 'sb', t0 + 2)]);
    });

    it('entries recorded before their gate current run started are stale: dropped, not counted, not kicked', async () => {
      await u.index.claim('gus', at('gate@a', 'before', t0 + 1), { policy: 'kick-old' }, live);
      const restarted: LiveGate[] = [{ serverId: 'gate@a', startedAt: t0 + 10 }, ...gates('gate@b')];
      expect(await u.index.locate('gus', restarted)).toEqual([]);
      const r = await u.other.claim('gus', at('gate@b', 'now', t0 + 20), { policy: 'kick-old' }, restarted);
      expect(r).toEqual({ rejected: false, kick: [] });
      expect(await u.index.locate('gus', live)).toEqual([at('gate@b', 'now', t0 + 20)]);
    });

    it('20 racing reject-new claims from 20 gates: exactly one is accepted', async () => {
      const ids = Array.from({ length: 20 }, (_, i) => `gate@${i}`);
      const all = gates(...ids);
      const results = await Promise.all(
        ids.map((g, i) => (i % 2 ? u.other : u.index).claim('hal', at(g, `s${i}`, t0 + 1), { policy: 'reject-new' }, all)),
      );
      expect(results.filter((r) => !r.rejected)).toHaveLength(1);
      expect(await u.index.locate('hal', all)).toHaveLength(1);
    });

    it('bans (optional): made on one handle, listed on the other; replaced, lifted, expired, bounded by limit', async () => {
      const { index, other } = u;
      if (!index.ban || !index.unban || !index.bans || !other.ban || !other.bans) {
        expect(index.ban === undefined && index.bans === undefined).toBe(true); // none or all three
        return;
      }
      const later = Date.now() + 60_000;
      await index.ban('ip', '10.0.0.1', later);
      await index.ban('clientId', 'c:1|x', later + 1);
      await index.ban('userId', 'ü😀', later + 2);
      await index.ban('ip', '10.0.0.2', Date.now() - 1); // already over
      expect(await other.bans(100)).toEqual([
        { kind: 'ip', value: '10.0.0.1', untilMs: later },
        { kind: 'clientId', value: 'c:1|x', untilMs: later + 1 },
        { kind: 'userId', value: 'ü😀', untilMs: later + 2 },
      ]);
      expect(await other.bans(1)).toEqual([{ kind: 'ip', value: '10.0.0.1', untilMs: later }]);
      await other.ban('ip', '10.0.0.1', later + 5); // replaces the first
      await index.unban('clientId', 'c:1|x');
      await index.unban('clientId', 'never banned');
      expect(await index.bans(100)).toEqual([
        { kind: 'userId', value: 'ü😀', untilMs: later + 2 },
        { kind: 'ip', value: '10.0.0.1', untilMs: later + 5 },
      ]);
      await index.ban('userId', 'soon', Date.now() + 30);
      await new Promise((r) => setTimeout(r, 60));
      expect((await other.bans(100)).map((b) => b.value)).not.toContain('soon');
    });

    it('user ids with |, :, {}, spaces and unicode are distinct users', async () => {
      const users = ['a|b', 'a:b', '{a}', 'a b', 'ü😀', 'A|B'];
      for (const [i, user] of users.entries()) await u.index.claim(user, at('gate@a', `s${i}`, t0 + i), { policy: 'reject-new' }, live);
      for (const [i, user] of users.entries()) expect(await u.other.locate(user, live)).toEqual([at('gate@a', `s${i}`, t0 + i)]);
    });

    it('epoch and reassert (when implemented): the epoch is one string on both handles and stays while nothing is lost; reassert records entries as they are, without a policy', async () => {
      if (!u.index.epoch || !u.index.reassert) {
        expect(u.index.epoch ?? u.index.reassert).toBeUndefined(); // both or neither
        return;
      }
      const e = await u.index.epoch();
      expect(typeof e).toBe('string');
      expect(e.length).toBeGreaterThan(0);
      expect(await u.other.epoch?.()).toBe(e);
      await u.index.claim('ivy', at('gate@a', 's1', t0 + 1), { policy: 'reject-new' }, live);
      expect(await u.index.epoch()).toBe(e);
      const many = Array.from({ length: 1500 }, (_, i) => ({ userId: `re${i}`, location: at('gate@b', `r${i}`, t0 + 2) }));
      await u.index.reassert([{ userId: 'ivy', location: at('gate@b', 's2', t0 + 2) }, ...many]);
      // No policy: ivy has two sessions now, though a reject-new claim would have refused the second.
      expect(sorted(await u.other.locate('ivy', live))).toEqual([at('gate@a', 's1', t0 + 1), at('gate@b', 's2', t0 + 2)]);
      expect(await u.other.locate('re1499', live)).toEqual([at('gate@b', 'r1499', t0 + 2)]);
      await u.index.reassert([]);
    });
  });
}
