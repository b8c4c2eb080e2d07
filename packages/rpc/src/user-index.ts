/**
 * Where users are connected, across gates: userId → the (gate serverId, sessionId) pairs of
 * their bound sessions. Gates claim an entry on Bind and release it on UnBind and
 * disconnect; anyone reads it. An entry is valid only while its gate is live (registered on
 * the transport), so a crashed gate's users vanish when its registration expires, without
 * per-user refreshes. mqant has no such index (issue #80).
 */

/**
 * A live gate as the index needs it: its id and when its current run started (epoch ms,
 * 0 when unknown). An entry recorded before its gate's current run started belongs to an
 * earlier run of a gate restarted under the same id, and is stale.
 */
export interface LiveGate {
  serverId: string;
  startedAt: number;
}

/** Live gates from a transport's registry (`meta.startedAt`, ISO time, set by RedisTransport). */
export function liveGatesOf(servers: readonly { serverId: string; meta?: Record<string, string> }[]): LiveGate[] {
  return servers.map((s) => {
    const t = s.meta?.startedAt ? Date.parse(s.meta.startedAt) : 0;
    return { serverId: s.serverId, startedAt: Number.isFinite(t) ? t : 0 };
  });
}

/** True when `loc` is on a live gate and was recorded in that gate's current run. */
export function isCurrent(loc: UserLocation, live: ReadonlyMap<string, number>): boolean {
  const startedAt = live.get(loc.serverId);
  return startedAt !== undefined && loc.since >= startedAt;
}

/** One bound session of a user. */
export interface UserLocation {
  serverId: string;
  sessionId: string;
  /** When it was bound, epoch ms (the oldest is kicked first). */
  since: number;
}

/**
 * What happens when a user who already has sessions binds another one:
 * - `allow`: several sessions per user, up to `maxSessionsPerUser` (default unlimited); past
 *   it, `onLimit` decides (default `kick-old`);
 * - `kick-old`: the older session(s) are closed, across gates, before the new bind completes
 *   (`maxSessionsPerUser` defaults to 1);
 * - `reject-new`: the new bind fails with code DUPLICATE_LOGIN (`maxSessionsPerUser` defaults to 1).
 */
export interface DuplicateLoginPolicy {
  policy: 'allow' | 'kick-old' | 'reject-new';
  maxSessionsPerUser?: number;
  /** For `allow` with a cap: kick the oldest session, or reject the new bind. Default `kick-old`. */
  onLimit?: 'kick-old' | 'reject-new';
}

/** Resolved limit and overflow action of a policy. */
export function policyLimits(p: DuplicateLoginPolicy): { max: number; onLimit: 'kick-old' | 'reject-new' } {
  switch (p.policy) {
    case 'kick-old':
      return { max: p.maxSessionsPerUser ?? 1, onLimit: 'kick-old' };
    case 'reject-new':
      return { max: p.maxSessionsPerUser ?? 1, onLimit: 'reject-new' };
    default:
      return { max: p.maxSessionsPerUser ?? Infinity, onLimit: p.onLimit ?? 'kick-old' };
  }
}

/** Outcome of a claim: rejected, or accepted with the sessions the caller must now close. */
export type ClaimResult = { rejected: true; existing: UserLocation[] } | { rejected: false; kick: UserLocation[] };

export interface UserIndex {
  /**
   * Atomically applies the policy and, unless rejected, records `entry` for `userId`.
   * Entries of gates not in `liveGates`, or recorded before their gate's current run, are
   * dropped first. Two claims racing on two gates end in exactly one outcome.
   */
  claim(userId: string, entry: UserLocation, policy: DuplicateLoginPolicy, liveGates: readonly LiveGate[]): Promise<ClaimResult>;
  /** Removes one entry (unbind, disconnect). Removing a missing entry succeeds. */
  release(userId: string, serverId: string, sessionId: string): Promise<void>;
  /** The user's entries on live gates (current runs only). */
  locate(userId: string, liveGates: readonly LiveGate[]): Promise<UserLocation[]>;
  /**
   * Optional, with {@link reassert}: the identity of the index's contents, a string that
   * changes when the store behind it lost its entries (RedisUserIndex: an empty Redis
   * restart, a FLUSHALL). Gates poll it every `userIndexCheckInterval` ms and, when it
   * changed since their last look, re-put the entries of their bound sessions. An index
   * that cannot lose entries while its gates live (MemoryUserIndex) returns a constant.
   */
  epoch?(): Promise<string>;
  /**
   * Optional, with {@link epoch}: records these entries as they are, without applying a
   * policy (a gate's own bound sessions, after the index was reset), in as few round trips
   * as the store allows (RedisUserIndex: pipelined, 1000 entries per round trip).
   */
  reassert?(entries: readonly UserIndexEntry[]): Promise<void>;
  /**
   * Optional: records a ban every gate sharing this index applies, until `untilMs`
   * (epoch ms); a second ban of the same target replaces the first. Gates read the list with
   * {@link bans} every `banSyncInterval`, never per connection.
   */
  ban?(kind: BanKind, value: string, untilMs: number): Promise<void>;
  /** Optional: lifts a ban made with {@link ban}; lifting a missing one succeeds. */
  unban?(kind: BanKind, value: string): Promise<void>;
  /** Optional: the bans not yet expired (`untilMs` > now), soonest to expire first, at most `limit` of them. */
  bans?(limit: number): Promise<SharedBan[]>;
  close?(): Promise<void>;
}

/** What a ban targets: a client address, an MQTT client id, or a bound user id. */
export type BanKind = 'ip' | 'clientId' | 'userId';

/** A ban as the user index shares it between gates. */
export interface SharedBan {
  kind: BanKind;
  value: string;
  /** Epoch ms at which the ban ends. */
  untilMs: number;
}

/** Member of a ban in a shared list: `<kind>:<value>` (kinds have no `:`, so the first one splits). */
export function banMember(kind: BanKind, value: string): string {
  return `${kind}:${value}`;
}

/** The ban of a member written by {@link banMember}, or undefined for anything else. */
export function parseBanMember(member: string, untilMs: number): SharedBan | undefined {
  const i = member.indexOf(':');
  const kind = member.slice(0, i);
  if (kind !== 'ip' && kind !== 'clientId' && kind !== 'userId') return undefined;
  return { kind, value: member.slice(i + 1), untilMs };
}

/** One entry of the index: a user's bound session (see {@link UserIndex.reassert}). */
export interface UserIndexEntry {
  userId: string;
  location: UserLocation;
}

/**
 * The index for one process (the in-process transport): a Map. Every gate and module of the
 * app must share one instance (the app host hands it out).
 */
export class MemoryUserIndex implements UserIndex {
  private readonly users = new Map<string, Map<string, UserLocation>>();
  private readonly id = `memory-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

  /** Constant: a Map in this process loses nothing while its gates live. */
  async epoch(): Promise<string> {
    return this.id;
  }

  async reassert(entries: readonly UserIndexEntry[]): Promise<void> {
    for (const { userId, location } of entries) {
      const map = this.users.get(userId) ?? new Map<string, UserLocation>();
      map.set(fieldOf(location.serverId, location.sessionId), { ...location });
      this.users.set(userId, map);
    }
  }

  /** Ban member → until (epoch ms). */
  private readonly banned = new Map<string, number>();

  async ban(kind: BanKind, value: string, untilMs: number): Promise<void> {
    this.banned.set(banMember(kind, value), untilMs);
  }

  async unban(kind: BanKind, value: string): Promise<void> {
    this.banned.delete(banMember(kind, value));
  }

  async bans(limit: number): Promise<SharedBan[]> {
    const now = Date.now();
    const out: SharedBan[] = [];
    for (const [member, until] of this.banned) {
      if (until <= now) this.banned.delete(member);
      else {
        const b = parseBanMember(member, until);
        if (b) out.push(b);
      }
    }
    return out.sort((a, b) => a.untilMs - b.untilMs).slice(0, limit);
  }

  async claim(userId: string, entry: UserLocation, policy: DuplicateLoginPolicy, liveGates: readonly LiveGate[]): Promise<ClaimResult> {
    const live = new Map(liveGates.map((g) => [g.serverId, g.startedAt]));
    const map = this.users.get(userId) ?? new Map<string, UserLocation>();
    const me = fieldOf(entry.serverId, entry.sessionId);
    const others: UserLocation[] = [];
    for (const [f, loc] of map) {
      if (f === me) continue;
      if (isCurrent(loc, live)) others.push(loc);
      else if (live.has(loc.serverId)) map.delete(f); // an earlier run of a restarted gate
      // entries of gates not live now are ignored, not deleted (the gate may come back)
    }
    const { max, onLimit } = policyLimits(policy);
    const kick: UserLocation[] = [];
    if (others.length + 1 > max) {
      if (onLimit === 'reject-new') {
        if (map.size) this.users.set(userId, map);
        return { rejected: true, existing: others };
      }
      others.sort((a, b) => a.since - b.since);
      for (const loc of others.slice(0, others.length + 1 - max)) {
        map.delete(fieldOf(loc.serverId, loc.sessionId));
        kick.push(loc);
      }
    }
    map.set(me, { ...entry });
    this.users.set(userId, map);
    return { rejected: false, kick };
  }

  async release(userId: string, serverId: string, sessionId: string): Promise<void> {
    const map = this.users.get(userId);
    if (!map) return;
    map.delete(fieldOf(serverId, sessionId));
    if (map.size === 0) this.users.delete(userId);
  }

  async locate(userId: string, liveGates: readonly LiveGate[]): Promise<UserLocation[]> {
    const live = new Map(liveGates.map((g) => [g.serverId, g.startedAt]));
    return [...(this.users.get(userId)?.values() ?? [])].filter((l) => isCurrent(l, live)).map((l) => ({ ...l }));
  }
}

/**
 * The index key under which a user's detached sessions (kept for a resume) are
 * recorded, apart from the bound ones: they never count toward a duplicate-login policy
 * and are not online, yet pushes (`UserDirectory.sendToUser`) and resumes find them.
 */
export function detachedKey(userId: string): string {
  return `\u0000detached\u0000${userId}`;
}

/** Index field of a session: `serverId|sessionId` (session ids are hex, so the last `|` splits). */
export function fieldOf(serverId: string, sessionId: string): string {
  return `${serverId}|${sessionId}`;
}

export function parseField(field: string, since: number): UserLocation {
  const i = field.lastIndexOf('|');
  return { serverId: field.slice(0, i), sessionId: field.slice(i + 1), since };
}
