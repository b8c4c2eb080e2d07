import { type BanKind, type SharedBan } from '@mqgate/rpc';
import { banMember as memberOf } from '@mqgate/rpc/internal';

/**
 * Why a connection is closed at accept, before its CONNECT is read: a fixed set (metrics
 * label, warn-log kind `limit:<refusal>`), never client data.
 */
export type DoorRefusal = 'maxConnections' | 'maxConnectionsPerIp' | 'connectRate' | 'maxTrackedIps' | 'bannedIp';

/**
 * Why a CONNECT is refused: a ban (`bannedClientId`, `flapping`: CONNACK 0x8A Banned, 3.1.1
 * return code 5) or `flappingInFlight` (CONNACK 0x9F Connection rate exceeded, 3.1.1: 3), see
 * admission/flapping.ts.
 */
export type ConnectRefusal = 'bannedClientId' | 'flapping' | 'flappingInFlight';

/** The gate options admission works with (see options.ts for their meaning and defaults). */
export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
  connectRate: { perSecond: number; burst: number } | false;
  maxTrackedIps: number;
  maxBans: number;
}

/** A ban held by this gate; `shared` when it came from (or went to) the user index. */
export interface Ban extends SharedBan {
  shared: boolean;
  /** When this gate recorded it, epoch ms. */
  since: number;
}

/** Per-address state: open connections and the connect-rate bucket. */
interface IpEntry {
  open: number;
  /** WebSocket sockets from this address not yet upgraded (see {@link Admission.pending}). */
  pending: number;
  tokens: number;
  /** When `tokens` was last refilled, ms. */
  at: number;
}

/** How many of the oldest tracked addresses a new one may look through for an idle one to evict. */
const EVICT_SCAN = 64;

/**
 * The key the per-address limits (maxConnectionsPerIp, connectRate) count under: the IPv4
 * address itself (also when IPv4-mapped, `::ffff:a.b.c.d`), and for IPv6 its /64 prefix,
 * `2001:db8:0:1::/64`: one IPv6 host (a subscriber's LAN) gets a /64 and can pick any of its
 * 2^64 addresses, so counting single addresses would not limit it (the unit RFC 6177 and
 * the usual rate limiters, Cloudflare's or fail2ban's, treat as one client). Bans stay exact.
 */
export function addressGroup(ip: string): string {
  if (ip.indexOf(':') < 0) return ip;
  if (ip.startsWith('::ffff:') && ip.indexOf('.') > 0) return ip.slice(7);
  const zone = ip.indexOf('%');
  const bare = zone < 0 ? ip : ip.slice(0, zone);
  const gap = bare.indexOf('::');
  let groups: string[];
  if (gap < 0) groups = bare.split(':');
  else {
    const head = gap === 0 ? [] : bare.slice(0, gap).split(':');
    const tail = bare.slice(gap + 2) === '' ? [] : bare.slice(gap + 2).split(':');
    groups = [...head, ...new Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail];
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/**
 * Connection admission: the one object the gate asks at accept (`admit`), at CONNECT
 * (`connect`) and at Bind (`userBanned`), and tells at close (`released`). It holds the
 * open-connection counts, per-address counts and token buckets (EMQX `max_conn_rate`, per
 * address) and the operator's ban list (gate.ban and the shared list); every map is bounded
 * (maxTrackedIps, maxBans). Flapping detection keeps its own counts and bans
 * (admission/flapping.ts): an automatic ban never takes an operator's room. O(1) per accept
 * and per CONNECT; nothing per packet.
 */
export class Admission {
  /** Connections admitted and not yet released. */
  open = 0;
  private readonly ips = new Map<string, IpEntry>();
  private readonly banned = new Map<string, Ban>();

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Addresses tracked (for tests and stats). */
  get trackedIps(): number {
    return this.ips.size;
  }

  /**
   * A new connection from `ip`: undefined admits it (and counts it: call `released` at its
   * close), else the refusal; a refused connection is not counted.
   */
  admit(ip: string): DoorRefusal | undefined {
    const l = this.limits;
    if (this.banned.size > 0 && this.isBanned('ip', ip)) return 'bannedIp';
    if (l.maxConnections > 0 && this.open + this.pendingTotal >= l.maxConnections) return 'maxConnections';
    const rate = l.connectRate;
    if (l.maxConnectionsPerIp > 0 || rate) {
      const t = this.now();
      const key = addressGroup(ip);
      let e = this.ips.get(key);
      if (e) {
        // Most recently used last: the oldest entries are the eviction candidates.
        this.ips.delete(key);
        this.ips.set(key, e);
      } else {
        if (this.ips.size >= l.maxTrackedIps && !this.evictIdleIp()) return 'maxTrackedIps';
        e = { open: 0, pending: 0, tokens: rate ? rate.burst : 0, at: t };
        this.ips.set(key, e);
      }
      if (l.maxConnectionsPerIp > 0 && e.open + e.pending >= l.maxConnectionsPerIp) return 'maxConnectionsPerIp';
      if (rate) {
        e.tokens = Math.min(rate.burst, e.tokens + ((t - e.at) * rate.perSecond) / 1000);
        e.at = t;
        if (e.tokens < 1) return 'connectRate';
        e.tokens -= 1;
      }
      e.open++;
    }
    this.open++;
    return undefined;
  }

  /** WebSocket sockets accepted and not yet upgraded, across addresses. */
  private pendingTotal = 0;

  /**
   * A socket a WebSocket listener accepted, before its HTTP upgrade (which may take up to
   * connectTimeout): counted against `maxConnections` and `maxConnectionsPerIp` with the open
   * connections, so un-upgraded sockets cannot take every file descriptor; the connect rate is
   * charged at the upgrade ({@link admit}). `ip` is the socket's peer (a trusted proxy's own
   * address counts too). Undefined admits it: call {@link pendingDone} when it upgrades or closes.
   */
  pending(ip: string): DoorRefusal | undefined {
    const l = this.limits;
    if (this.banned.size > 0 && this.isBanned('ip', ip)) return 'bannedIp';
    if (l.maxConnections > 0 && this.open + this.pendingTotal >= l.maxConnections) return 'maxConnections';
    if (l.maxConnectionsPerIp > 0) {
      const key = addressGroup(ip);
      let e = this.ips.get(key);
      if (!e) {
        if (this.ips.size >= l.maxTrackedIps && !this.evictIdleIp()) return 'maxTrackedIps';
        const rate = l.connectRate;
        e = { open: 0, pending: 0, tokens: rate ? rate.burst : 0, at: this.now() };
        this.ips.set(key, e);
      }
      if (e.open + e.pending >= l.maxConnectionsPerIp) return 'maxConnectionsPerIp';
      e.pending++;
    }
    this.pendingTotal++;
    return undefined;
  }

  /** A socket counted by {@link pending} upgraded or closed. */
  pendingDone(ip: string): void {
    if (this.pendingTotal > 0) this.pendingTotal--;
    if (this.limits.maxConnectionsPerIp > 0) {
      const e = this.ips.get(addressGroup(ip));
      if (e && e.pending > 0) e.pending--;
    }
  }

  /** An admitted connection from `ip` closed. */
  released(ip: string): void {
    if (this.open > 0) this.open--;
    if (this.ips.size === 0) return; // the per-address limits are off (or track nobody)
    const e = this.ips.get(addressGroup(ip));
    if (e && e.open > 0) e.open--;
  }

  /** Evicts the oldest address without an open connection among the oldest {@link EVICT_SCAN}. */
  private evictIdleIp(): boolean {
    let n = 0;
    for (const [ip, e] of this.ips) {
      if (e.open === 0 && e.pending === 0) {
        this.ips.delete(ip);
        return true;
      }
      if (++n >= EVICT_SCAN) return false;
    }
    return false;
  }

  /** A CONNECT of `clientId`: undefined lets it on (to flapping detection and authentication), else the refusal (an operator's or a shared ban). */
  connect(clientId: string): 'bannedClientId' | undefined {
    if (this.banned.size > 0 && this.isBanned('clientId', clientId)) return 'bannedClientId';
    return undefined;
  }

  /** True when `userId` is banned (checked at Bind, JWT CONNECT included). */
  userBanned(userId: string): boolean {
    return this.banned.size > 0 && this.isBanned('userId', userId);
  }

  /** True when a ban of this kind and value holds now (an expired one is dropped). */
  isBanned(kind: BanKind, value: string): boolean {
    const key = memberOf(kind, value);
    const b = this.banned.get(key);
    if (!b) return false;
    if (b.untilMs > this.now()) return true;
    this.banned.delete(key);
    return false;
  }

  /**
   * Records a ban until `untilMs` (epoch ms), replacing one of the same target.
   * @throws RangeError when maxBans bans (not expired) are held and this is a new target.
   */
  ban(kind: BanKind, value: string, untilMs: number, shared: boolean): Ban {
    const b = this.tryBan(kind, value, untilMs, shared);
    if (!b) throw new RangeError(`ban list full: maxBans ${this.limits.maxBans} bans are held; unban some or raise maxBans`);
    return b;
  }

  private tryBan(kind: BanKind, value: string, untilMs: number, shared: boolean): Ban | undefined {
    const key = memberOf(kind, value);
    if (!this.banned.has(key) && this.banned.size >= this.limits.maxBans) {
      this.dropExpired();
      if (this.banned.size >= this.limits.maxBans) return undefined;
    }
    const b: Ban = { kind, value, untilMs, shared, since: this.now() };
    this.banned.set(key, b);
    return b;
  }

  /** Lifts a ban; false when there was none. */
  unban(kind: BanKind, value: string): boolean {
    return this.banned.delete(memberOf(kind, value));
  }

  /** The bans in force, soonest to end first. */
  list(): SharedBan[] {
    this.dropExpired();
    return [...this.banned.values()].sort((a, b) => a.untilMs - b.untilMs).map(({ kind, value, untilMs }) => ({ kind, value, untilMs }));
  }

  /**
   * Takes the shared list read from the user index at `readAt` (ms, when the read began):
   * its bans are held here; shared bans held before `readAt` and missing from it (lifted or
   * expired on another gate) are dropped. Returns the bans new to this gate, to enforce on
   * live sessions. Bans past maxBans are not taken.
   */
  sync(shared: readonly SharedBan[], readAt: number): SharedBan[] {
    const seen = new Set<string>();
    const fresh: SharedBan[] = [];
    for (const s of shared) {
      const key = memberOf(s.kind, s.value);
      seen.add(key);
      const had = this.banned.get(key);
      if (had && had.untilMs === s.untilMs) continue;
      if (this.tryBan(s.kind, s.value, s.untilMs, true) && !had) fresh.push(s);
    }
    for (const [key, b] of this.banned) if (b.shared && b.since < readAt && !seen.has(key)) this.banned.delete(key);
    return fresh;
  }

  /** Drops expired bans and idle addresses whose bucket is full again (run every banSyncInterval). */
  sweep(): void {
    const t = this.now();
    this.dropExpired();
    const rate = this.limits.connectRate;
    for (const [ip, e] of this.ips) {
      if (e.open === 0 && e.pending === 0 && (!rate || e.tokens + ((t - e.at) * rate.perSecond) / 1000 >= rate.burst)) this.ips.delete(ip);
    }
  }

  private dropExpired(): void {
    const t = this.now();
    for (const [key, b] of this.banned) if (b.untilMs <= t) this.banned.delete(key);
  }
}
