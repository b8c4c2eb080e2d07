import type { IConnectPacket } from 'mqtt-packet';
import type { SharedBan, UserIndex } from '@mqgate/rpc';
import { FlappingDetector } from './flapping';
import { Admission, type ConnectRefusal, type DoorRefusal } from './tables';
import type { GateRuntime } from '../gate-runtime';
import type { GateMetrics } from '../ops/metrics';
import type { ResolvedGateOptions } from '../options';
import type { ConnectVerdict, MqttConnection } from '../protocol/connection';
import { ReasonCode } from '../protocol/mqtt5';
import type { GateSession } from '../session/session';
import type { SessionRegistry } from '../session/registry';
import { SharedBanEpoch } from './shared-ban-epoch';

type Conn = MqttConnection<GateSession>;

/** What `gate.ban` / `gate.unban` target: a client address, an MQTT client id, or a bound user id. */
export type BanTarget = { ip: string } | { clientId: string } | { userId: string };

function banOf(t: BanTarget): [SharedBan['kind'], string] {
  if ('ip' in t && typeof t.ip === 'string') return ['ip', t.ip];
  if ('clientId' in t && typeof t.clientId === 'string') return ['clientId', t.clientId];
  if ('userId' in t && typeof t.userId === 'string') return ['userId', t.userId];
  throw new TypeError('a ban targets { ip }, { clientId } or { userId } (a string)');
}

/** What the door works with: the gate's options, metrics, connections and sessions. */
export interface DoorDeps {
  readonly options: ResolvedGateOptions;
  readonly metrics: GateMetrics | undefined;
  /** The gate's admitted connections (the door reads them to enforce an IP ban). */
  readonly connections: ReadonlySet<Conn>;
  readonly registry: SessionRegistry;
  /** The runtime once started (warn log, session kicks). */
  runtime(): GateRuntime | undefined;
  /** True while the gate is running. */
  running(): boolean;
}

/**
 * The gate's door: asks {@link Admission} at accept, CONNECT and Bind, closes or
 * refuses what it turns away (counted in `mqgate_admission_refused_total{reason}`, logged
 * through the rate-limited warn log as `limit:<reason>`), holds the ban API, enforces a new
 * ban on live sessions, and reads the shared ban list from the user index every
 * banSyncInterval (never per connection).
 */
export class Door {
  private readonly admission: Admission;
  private readonly flapping: FlappingDetector;
  /** The user index, once started: where bans are shared when it has `ban`. */
  private userIndex: UserIndex | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Connections whose CONNECT flapping detection counted and whose authentication has not settled (see {@link connected}, {@link released}). */
  private readonly inFlight = new WeakSet<Conn>();
  /** The flapping ban table was found full (warned once until it has room again). */
  private warnedFull = false;
  /** The shared ban list as last read (and written) here, and the user index's epoch then: what an emptied index gets back. */
  private readonly sharedBans = new SharedBanEpoch();

  constructor(private readonly deps: DoorDeps) {
    this.admission = new Admission(deps.options);
    this.flapping = new FlappingDetector(deps.options);
  }

  /** Starts the periodic ban sync (and the sweep of admission's tables). */
  start(userIndex: UserIndex | undefined): void {
    this.userIndex = userIndex;
    this.timer = setInterval(() => void this.sync(), this.deps.options.banSyncInterval);
    this.timer.unref();
    void this.sync();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A new connection: true admits it (tell {@link released} at its close); false: it has been closed. */
  admit(conn: Conn): boolean {
    const refusal = this.admission.admit(conn.wire.remoteAddress);
    if (refusal) this.refuse(conn, refusal);
    return refusal === undefined;
  }

  /**
   * A WebSocket listener's socket, before its upgrade ({@link Admission.pending}): returns the
   * function to call once it upgrades or closes (idempotent), or undefined when refused
   * (counted and logged as at accept; the listener destroys the socket).
   */
  pending(ip: string): (() => void) | undefined {
    const refusal = this.admission.pending(ip);
    if (refusal) {
      this.deps.metrics?.refusedAtDoor(refusal);
      this.deps.runtime()?.warn(`limit:${refusal}`, { ip }, `WebSocket socket refused before its upgrade: ${refusal}`);
      return undefined;
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.admission.pendingDone(ip);
    };
  }

  /** An admitted connection closed (a CONNECT of it still being authenticated is given back to flapping detection). */
  released(conn: Conn): void {
    this.admission.released(conn.wire.remoteAddress);
    if (this.inFlight.delete(conn)) this.flapping.settle(conn.clientId, false);
  }

  /** Closes a connection admission refused at accept, before its CONNECT is read; counted and logged. */
  private refuse(conn: Conn, refusal: DoorRefusal): void {
    const o = this.deps.options;
    const ip = conn.wire.remoteAddress;
    const why: Record<DoorRefusal, string> = {
      maxConnections: `maxConnections ${o.maxConnections} reached`,
      maxConnectionsPerIp: `maxConnectionsPerIp ${o.maxConnectionsPerIp} reached for ${ip}`,
      connectRate: `connectRate exceeded for ${ip}`,
      maxTrackedIps: `maxTrackedIps ${o.maxTrackedIps} addresses tracked, none idle`,
      bannedIp: `banned address ${ip}`,
    };
    conn.destroy(why[refusal]);
    this.deps.metrics?.refusedAtDoor(refusal);
    this.deps.runtime()?.warn(`limit:${refusal}`, { ip }, `connection refused at accept: ${why[refusal]}`);
  }

  /**
   * Admission at CONNECT, before authentication: a banned client id (operator or flapping
   * ban) gets CONNACK 0x8A Banned (3.1.1: 5). Flapping detection counts the CONNECT now, as
   * it arrives (admission/flapping.ts): the one past `maxCount` accepted in `window` bans the
   * client id for `banTime` and gets 0x8A; one that finds `maxCount` already counted, some
   * still authenticating, gets 0x9F Connection rate exceeded (3.1.1: 3) and is not banned.
   * Client ids the gate assigned are not counted.
   */
  connect(conn: Conn, packet: IConnectPacket): ConnectVerdict | undefined {
    const clientId = conn.clientId;
    let refusal: ConnectRefusal | undefined = this.admission.connect(clientId);
    if (!refusal) {
      const counted = (packet.clientId ?? '') !== ''; // an id the gate assigned never repeats
      const verdict = counted ? this.flapping.arrive(clientId) : undefined;
      if (verdict === undefined) {
        if (counted && this.deps.options.flapping) this.inFlight.add(conn);
        return undefined;
      }
      refusal = verdict === 'banned' ? 'bannedClientId' : verdict === 'flapping' ? 'flapping' : 'flappingInFlight';
    }
    this.deps.metrics?.refusedAtDoor(refusal);
    const fields = { clientId, ip: conn.wire.remoteAddress };
    const warn = this.deps.runtime()?.warn;
    if (refusal === 'bannedClientId') {
      warn?.('limit:bannedClientId', fields, 'CONNECT of a banned client id refused');
      return { reasonCode: ReasonCode.Banned, reasonString: 'banned' };
    }
    const f = this.deps.options.flapping as { maxCount: number; window: number; banTime: number };
    if (refusal === 'flappingInFlight') {
      warn?.(
        'limit:flappingInFlight',
        fields,
        `CONNECT refused, not banned: ${f.maxCount} CONNECTs of this client id are counted in ${f.window} ms, some still authenticating`,
      );
      return { reasonCode: ReasonCode.ConnectionRateExceeded, reasonString: 'too many CONNECTs of this client id at once' };
    }
    warn?.('limit:flapping', fields, `client id banned for ${f.banTime} ms: over ${f.maxCount} CONNECTs in ${f.window} ms`);
    this.warnIfFull();
    return { reasonCode: ReasonCode.Banned, reasonString: 'banned: the client id reconnects too often (flapping)' };
  }

  /** Warns once that the flapping ban table is full and evicts its oldest bans (again once it had room). */
  private warnIfFull(): void {
    if (!this.flapping.full || this.warnedFull) return;
    this.warnedFull = true;
    const max = this.deps.options.maxFlappingBans;
    this.deps
      .runtime()
      ?.warn(
        'flapping-bans-full',
        { maxFlappingBans: max },
        `flapping ban table full: ${max} client ids banned; each new flapping ban evicts the oldest (operator bans are kept apart)`,
      );
  }

  /** A CONNECT was accepted (CONNACK 0 sent): flapping detection counts it as accepted. */
  connected(conn: Conn): void {
    if (this.inFlight.delete(conn)) this.flapping.settle(conn.clientId, true);
  }

  /** Bind's ban check (JWT CONNECT included): counted and logged. */
  userRefused(userId: string): boolean {
    if (!this.admission.userBanned(userId)) return false;
    this.deps.metrics?.refusedAtDoor('bannedUserId');
    this.deps.runtime()?.warn('limit:bannedUserId', { userId }, 'Bind of a banned user id refused');
    return true;
  }

  /**
   * Bans a client address (refused at accept), a client id (CONNACK 0x8A Banned / 3.1.1
   * return code 5) or a user id (Bind and JWT CONNECT fail with code BANNED) for `ms`, and
   * kicks the live sessions it matches. With a user index that shares bans (RedisUserIndex),
   * every gate on it applies the ban within its `banSyncInterval`.
   * @throws RangeError when `ms` is not positive or maxBans bans are held; TypeError for a bad target; the user index's error.
   */
  async ban(target: BanTarget, ms: number): Promise<void> {
    const [kind, value] = banOf(target);
    if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`ban: ms must be a positive number, got ${ms}`);
    const untilMs = Date.now() + ms;
    const index = this.userIndex?.ban ? this.userIndex : undefined;
    const had = this.admission.isBanned(kind, value);
    this.admission.ban(kind, value, untilMs, index !== undefined);
    try {
      await index?.ban?.(kind, value, untilMs);
      if (index) this.sharedBans.wrote({ kind, value, untilMs });
    } catch (err) {
      if (!had) this.admission.unban(kind, value);
      throw err;
    }
    this.enforce({ kind, value, untilMs });
  }

  /** Lifts a ban (on every gate, with a user index that shares bans). Resolves false when this gate held none. */
  async unban(target: BanTarget): Promise<boolean> {
    const [kind, value] = banOf(target);
    const flapped = kind === 'clientId' && this.flapping.unban(value);
    const had = this.admission.unban(kind, value) || flapped;
    this.sharedBans.lifted(kind, value);
    await this.userIndex?.unban?.(kind, value);
    return had;
  }

  /** The bans in force on this gate (its own, flapping ones, and those shared by the user index), soonest to end first. */
  bans(): SharedBan[] {
    return [...this.admission.list(), ...this.flapping.list()].sort((a, b) => a.untilMs - b.untilMs);
  }

  /** Kicks the live sessions (and closes the pending connections) a new ban matches; a banned user's detached sessions are dropped. */
  private enforce(ban: SharedBan): void {
    const r = this.deps.runtime();
    if (!r) return;
    const reason = `kicked: banned (${ban.kind})`;
    if (ban.kind === 'ip') {
      for (const conn of [...this.deps.connections]) {
        if (conn.wire.remoteAddress !== ban.value) continue;
        if (conn.session && conn.requests) r.sessions.kick(conn.session, reason);
        else conn.destroy(`banned address ${ban.value}`);
      }
    } else if (ban.kind === 'clientId') {
      const s = this.deps.registry.byClientId(ban.value);
      if (s) r.sessions.kick(s, reason);
    } else {
      for (const s of this.deps.registry.byUserId(ban.value)) r.sessions.kick(s, reason);
      for (const d of r.resume.detached.ofUser(ban.value)) r.resume.discard(d.session); // no resume for a banned user
    }
  }

  /**
   * Reads the shared ban list (every banSyncInterval, never per connection), enforces new bans,
   * sweeps admission's maps. When the user index's epoch changed (or was never read: an empty
   * Redis restart lost the list), first writes back the shared bans this gate last knew.
   */
  private async sync(): Promise<void> {
    this.admission.sweep();
    this.flapping.sweep();
    if (!this.flapping.full) this.warnedFull = false;
    const index = this.userIndex;
    if (!index?.bans || !this.deps.running()) return;
    const readAt = Date.now();
    try {
      await this.sharedBans.reassertIfReset(index, readAt);
      const read = await index.bans(this.deps.options.maxBans);
      this.sharedBans.read(read);
      const fresh = this.admission.sync(read, readAt);
      if (this.deps.running()) for (const b of fresh) this.enforce(b);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      this.deps.runtime()?.warn('ban-sync', { error }, 'reading the shared ban list failed; the last one read stays');
    }
  }
}
