// About 480 lines: the operations behind every session verb (bind, unbind, settings, pushes,
// kicks) share the registry, the user index link and the limits; the limits, settings merge
// and registry have files of their own.
import {
  CLIENT_TEXTS,
  KICK_TOPIC,
  RpcError,
  SessionNotFoundError,
  type DuplicateLoginPolicy,
  type LiveGate,
  type Logger,
  type Mqtt5PushProperties,
  type PushQos,
  type SessionData,
  type UserIndex,
  type UserLocation,
} from '@mqgate/rpc';
import { quoteInput } from '@mqgate/rpc/internal';
import { ReasonCode } from '../protocol/mqtt5';
import { PushEncoding } from '../protocol/push-encoding';
import { PersistenceError } from '../persistence/error';
import type { GateSession } from './session';
import type { SessionPersistence } from '../persistence/persistence';
import type { SessionRegistry } from './registry';
import { checkSettings, checkUserId, type SessionLimits } from './limits';
import { copySettings } from './settings';
import type { WarnLog } from '../ops/warn-log';

/** The gate's link to the user index. */
export interface UserIndexLink {
  index: UserIndex;
  policy: DuplicateLoginPolicy;
  /** Live gates, this one included. */
  liveGates(): LiveGate[];
  /** Closes a session on another gate (its Close with a reason); resolves even if that fails. */
  kickRemote(location: UserLocation, reason: string): Promise<void>;
}

/** Reason a client gets on gate/kick when a newer login of the same user replaces it. */
export const DUPLICATE_LOGIN_REASON = 'logged in elsewhere (duplicate login policy)';

/** Events a gate emits about sessions; every payload is a snapshot, safe to keep. */
export interface SessionEvents {
  /** A client completed CONNECT. */
  connect: [session: SessionData];
  /** A session ended; `reason` says why (`client disconnect`, `connection lost`, `keepalive timeout (MQTT-3.1.2-24; MQTT 5: MQTT-3.1.2-22)`, `kicked: ...`). */
  disconnect: [session: SessionData, reason: string];
  /** A session was bound to a user id. */
  bind: [session: SessionData, userId: string];
  /** A session was unbound; `userId` is the one it had. */
  unbind: [session: SessionData, userId: string];
  /**
   * A session was resumed on a new connection of this gate (`gate/HD_resume`):
   * the same sessionId as before its connection dropped; `from` is `local`, `store` or the
   * serverId of the gate it was handed over from.
   */
  resume: [session: SessionData, info: { recovered: boolean; replayed: number; lost: number; from: string }];
}

/** The gate's detached sessions as the SessionManager sees them (resume/manager.ts). */
export interface DetachedSessions {
  get(sessionId: string): GateSession | undefined;
  sessions(): Iterable<GateSession>;
  discard(session: GateSession): void;
  /** Drops the user's detached sessions (on every gate) before a new login claims the index. */
  discardUser(userId: string): Promise<void>;
  /** A bind is about to be stored: a new resume token (its hash goes into that write). */
  binding(session: GateSession): void;
}

/** Emits one of the gate's session events (the gate catches listeners' exceptions). */
export type EmitSessionEvent = <E extends keyof SessionEvents>(event: E, ...args: SessionEvents[E]) => void;

/** Everything a SessionManager works with, known when the gate starts. */
export interface SessionManagerDeps {
  readonly registry: SessionRegistry;
  readonly users: UserIndexLink;
  /** Present when the gate has a StorageHandler. */
  readonly persistence: SessionPersistence | undefined;
  /** Delete what is stored for a user on every unbind (gate option `deleteOnUnbind`). */
  readonly deleteOnUnbind: boolean;
  readonly logger: Logger;
  readonly emit: EmitSessionEvent;
  readonly limits: SessionLimits;
  /** Rate-limited warn lines (ops/warn-log.ts): the causes of the errors sent as client texts. Default: logger.warn. */
  readonly warn?: WarnLog;
  /** ms between two looks at the user index's epoch (gate option userIndexCheckInterval); 0: never. Default 0. */
  readonly userIndexCheckInterval?: number;
  /** True when a user id is banned (gate.ban, admission/tables.ts): its Bind fails with code BANNED. */
  readonly userBanned?: (userId: string) => boolean;
}

/**
 * The operations behind the session verbs, on the gate's authoritative sessions: bind,
 * settings changes, pushes, kicks. Used by the session service (over RPC) and by code in
 * the gate's process (mqant's "local operation"). Made at gate start, with every
 * dependency known.
 */
export class SessionManager {
  readonly registry: SessionRegistry;
  private readonly users: UserIndexLink;
  private readonly persistence: SessionPersistence | undefined;
  private readonly deleteOnUnbind: boolean;
  private readonly logger: Logger;
  private readonly emit: EmitSessionEvent;
  private readonly limits: SessionLimits;
  private readonly warn: WarnLog;
  /** When each bound session claimed its index entry (ms): what a re-assert puts back. */
  private readonly claimedAt = new WeakMap<GateSession, number>();
  /** The user index's epoch as last seen (undefined before the first look), and the look in progress. */
  private indexEpoch: string | undefined;
  private indexCheck: { at: number; running: boolean } = { at: 0, running: false };
  private readonly userIndexCheckInterval: number;
  private readonly userBanned: ((userId: string) => boolean) | undefined;
  /** The detached sessions (set at gate start when resume is on). */
  detached: DetachedSessions | undefined;
  /** Bind and UnBind of one session run one at a time, in order: the tail of each session's chain. */
  private readonly userLocks = new WeakMap<GateSession, Promise<void>>();

  constructor(deps: SessionManagerDeps) {
    this.registry = deps.registry;
    this.users = deps.users;
    this.persistence = deps.persistence;
    this.deleteOnUnbind = deps.deleteOnUnbind;
    this.logger = deps.logger;
    this.emit = deps.emit;
    this.limits = deps.limits;
    this.warn = deps.warn ?? ((kind, fields, msg) => deps.logger.warn({ kind, ...fields }, msg));
    this.userIndexCheckInterval = deps.userIndexCheckInterval ?? 0;
    this.userBanned = deps.userBanned;
  }

  /**
   * Called from the gate's periodic sweep (`now` in ms): at most once per
   * userIndexCheckInterval, and one at a time, looks at the user index's epoch; when it
   * changed since the last look, or at the first look that succeeds (the store may have lost
   * its entries before it: an empty Redis restart), puts back the entry of every session bound
   * here, in one batch ({@link reassertIndex}). A
   * failure is logged (rate-limited, kind `user-index-check`) and tried again at the next look.
   */
  checkIndex(now: number): void {
    const index = this.users.index;
    const c = this.indexCheck;
    if (this.userIndexCheckInterval === 0 || !index.epoch || !index.reassert || c.running || now - c.at < this.userIndexCheckInterval) return;
    c.running = true;
    c.at = now;
    index
      .epoch()
      .then(async (epoch) => {
        // No epoch read yet counts as a change: the store may have lost its entries before the first look.
        if (epoch !== this.indexEpoch) await this.reassertIndex(this.indexEpoch === undefined ? 'first look' : 'reset');
        this.indexEpoch = epoch;
      })
      .catch((err: unknown) =>
        this.warn('user-index-check', { error: err instanceof Error ? err.message : String(err) }, 'user index check failed; retried'),
      )
      .finally(() => (c.running = false));
  }

  /**
   * Puts back the user index entry of every session bound on this gate, connected or detached
   * (waiting for a resume: its entry is held for the resume window), as claimed (same bind
   * time), in one batch, then releases those that unbound or closed meanwhile.
   * `why` names the look in the info line. Resolves with how many were put back.
   * @throws the index's error (the caller retries at its next look).
   */
  async reassertIndex(why: 'reset' | 'first look' = 'reset'): Promise<number> {
    const index = this.users.index;
    if (!index.reassert) return 0;
    const bound = [...this.registry.all(), ...(this.detached?.sessions() ?? [])].filter((s) => s.userId !== '');
    const entries = bound.map((s) => ({
      userId: s.userId,
      location: { serverId: s.serverId, sessionId: s.sessionId, since: this.claimedAt.get(s) ?? Date.now() },
    }));
    await index.reassert(entries);
    for (const [i, s] of bound.entries()) if (s.userId !== entries[i].userId || this.find(s.sessionId) !== s) this.release(s, entries[i].userId);
    if (entries.length > 0)
      this.logger.info(
        { serverId: bound[0].serverId, entries: entries.length },
        why === 'reset'
          ? 'user index was reset: entries of the bound sessions put back'
          : 'user index epoch read for the first time: entries of the bound sessions put back (the index may have lost them before)',
      );
    return entries.length;
  }

  /**
   * Logs the full cause of an error sent as a client text (rpc CLIENT_TEXTS): session id,
   * user id, the session's trace id, the store's or index's own message. Rate-limited per kind.
   */
  private logCause(kind: string, session: GateSession, userId: string, err: unknown, msg: string, verb?: string): void {
    const error = err instanceof Error ? err.message : String(err);
    this.warn(kind, { userId, sessionId: session.sessionId, traceId: session.traceId, ...(verb !== undefined && { verb }), error }, msg);
  }

  /** @throws SessionNotFoundError (code NO_SESSION) when the id is not live on this gate. */
  require(sessionId: string): GateSession {
    const s = this.find(sessionId);
    if (!s) throw new SessionNotFoundError(sessionId);
    return s;
  }

  /**
   * A connected session (not a detached one: Bind and UnBind need the connection).
   * @throws SessionNotFoundError (code NO_SESSION) otherwise.
   */
  requireConnected(sessionId: string): GateSession {
    const s = this.registry.get(sessionId);
    if (!s) throw new SessionNotFoundError(sessionId);
    return s;
  }

  /** A live or detached session of this gate, or undefined. */
  find(sessionId: string): GateSession | undefined {
    return this.registry.get(sessionId) ?? this.detached?.get(sessionId);
  }

  /**
   * Binds a session to a user id (mqant Bind). Rebinding to another id unbinds the old one
   * first. With a StorageHandler, the stored settings are merged in (live keys win) and the
   * session is stored before this resolves.
   * @throws LimitError (code LIMIT) past maxUserIdBytes, BadArgumentError for ill-formed
   *   Unicode (nothing changes); PersistenceError (code STORAGE_UNAVAILABLE, text
   *   CLIENT_TEXTS.STORAGE_UNAVAILABLE_BIND) when the store failed: the session is bound all
   *   the same (the cause is logged at warn, kind `storage-bind`); RpcError BANNED when the user id is banned (gate.ban).
   */
  bind(session: GateSession, userId: string): Promise<void> {
    try {
      checkUserId(`Bind(${quoteInput(userId)})`, userId, this.limits);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.userBanned?.(userId)) return Promise.reject(new RpcError(CLIENT_TEXTS.BANNED, 'BANNED')); // the door logs the user id
    return this.serially(session, () => this.bindNow(session, userId));
  }

  /**
   * Runs Bind and UnBind of one session one after the other: two logins pipelined by one
   * client, or a logout racing a login, each see the outcome of the one before.
   */
  private serially(session: GateSession, run: () => Promise<void>): Promise<void> {
    const result = (this.userLocks.get(session) ?? Promise.resolve()).then(run);
    this.userLocks.set(
      session,
      result.then(
        () => undefined,
        () => undefined,
      ),
    );
    return result;
  }

  private async bindNow(session: GateSession, userId: string): Promise<void> {
    const previous = session.userId;
    if (previous === userId) return;
    if (previous !== '') await this.unbindNow(session, false);
    if (this.registry.get(session.sessionId) !== session) throw new SessionNotFoundError(session.sessionId);
    await this.detached?.discardUser(userId);
    await this.claim(session, userId, this.users);
    this.registry.setUser(session, userId);
    this.detached?.binding(session);
    let failure: Error | undefined;
    if (this.persistence) {
      try {
        await this.persistence.bound(session);
      } catch (err) {
        failure = err as Error;
      }
    }
    if (this.registry.get(session.sessionId) !== session) {
      // The client left while the store was answering: no bind to report (disconnect released it).
      throw new SessionNotFoundError(session.sessionId);
    }
    this.emit('bind', session.snapshot(), userId);
    if (failure) {
      this.logCause(
        'storage-bind',
        session,
        userId,
        failure,
        'Bind: bound on the gate, the session store failed (merged and stored when it is back)',
      );
      throw new PersistenceError('STORAGE_UNAVAILABLE', CLIENT_TEXTS.STORAGE_UNAVAILABLE_BIND, failure);
    }
  }

  /**
   * Records the session in the user index under the duplicate-login policy, and closes the
   * sessions the policy displaces (here or on other gates) before the bind completes.
   * @throws RpcError DUPLICATE_LOGIN when the policy rejects the new bind; USER_INDEX when
   *   the index cannot be reached (cause logged at warn, kind `user-index-claim`); NO_SESSION
   *   when the session closed meanwhile. The first two carry CLIENT_TEXTS.
   */
  private async claim(session: GateSession, userId: string, users: UserIndexLink): Promise<void> {
    const entry = { serverId: session.serverId, sessionId: session.sessionId, since: Date.now() };
    this.claimedAt.set(session, entry.since);
    let result;
    try {
      result = await users.index.claim(userId, entry, users.policy, users.liveGates());
    } catch (err) {
      this.logCause('user-index-claim', session, userId, err, 'Bind: the user index failed; login refused');
      throw new RpcError(CLIENT_TEXTS.USER_INDEX, 'USER_INDEX');
    }
    if (result.rejected) {
      this.logger.debug(
        { userId, sessionId: session.sessionId, existing: result.existing.length, policy: users.policy.policy },
        'Bind: rejected by the duplicate login policy',
      );
      throw new RpcError(CLIENT_TEXTS.DUPLICATE_LOGIN, 'DUPLICATE_LOGIN');
    }
    await Promise.all(
      result.kick.map((loc) => {
        const local = loc.serverId === session.serverId ? this.registry.get(loc.sessionId) : undefined;
        if (local) {
          this.kick(local, DUPLICATE_LOGIN_REASON);
          return undefined;
        }
        return users.kickRemote(loc, DUPLICATE_LOGIN_REASON);
      }),
    );
    if (this.registry.get(session.sessionId) !== session) {
      this.release(session, userId);
      throw new SessionNotFoundError(session.sessionId);
    }
  }

  /**
   * Removes a session's entry from the user index (unbind, disconnect). A failure is logged
   * and retried (1 s, 2 s, 4 s... up to 5 attempts), so a blip of the index does not leave
   * the user counted as online on this live gate.
   */
  release(session: GateSession, userId: string, attempt = 0): void {
    if (userId === '') return;
    this.users.index.release(userId, session.serverId, session.sessionId).catch((err: unknown) => {
      if (attempt === 0) this.logger.warn({ userId, error: err instanceof Error ? err.message : String(err) }, 'user index update failed');
      if (attempt < 4) setTimeout(() => this.release(session, userId, attempt + 1), 1000 * 2 ** attempt).unref();
    });
  }

  /**
   * Clears the user id (mqant UnBind); settings stay with the connection and are no longer
   * persisted. With `deleteStored` (or the gate's deleteOnUnbind) what is stored for the
   * user is deleted: an explicit logout.
   * @throws PersistenceError (code STORAGE, CLIENT_TEXTS.STORAGE) when the delete failed: the
   *   session is unbound all the same (the cause is logged at warn, kind `storage-delete`).
   */
  unbind(session: GateSession, deleteStored: boolean): Promise<void> {
    return this.serially(session, () => this.unbindNow(session, deleteStored));
  }

  private async unbindNow(session: GateSession, deleteStored: boolean): Promise<void> {
    const previous = session.userId;
    if (previous === '') return;
    this.registry.setUser(session, '');
    this.release(session, previous);
    this.emit('unbind', session.snapshot(), previous);
    if (!this.persistence) return;
    try {
      await this.persistence.unbound(session, previous, deleteStored || this.deleteOnUnbind);
    } catch (err) {
      this.logCause('storage-delete', session, previous, err, 'UnBind: unbound, deleting the stored session failed');
      throw new PersistenceError('STORAGE', CLIENT_TEXTS.STORAGE, err as Error);
    }
  }

  /**
   * Applies a settings change: `set` keys are written, `remove` keys deleted. Only the keys
   * named change (mqant's Push rewrites every key it is sent). While bound with a
   * StorageHandler, resolves once the change is stored (changes in one tick share a write).
   * @param verb names the change in errors, e.g. `Set("level")`.
   * @throws LimitError (code LIMIT) or BadArgumentError (ill-formed Unicode) when the change
   *   would take the session past a limit (see SessionLimits): nothing changes.
   * @throws PersistenceError (code STORAGE_UNAVAILABLE, CLIENT_TEXTS.STORAGE_UNAVAILABLE)
   *   when the store failed: the change is live, the gate retries the write until it is
   *   stored (a gate stop before that logs the user at error). The cause is logged at warn
   *   (kind `storage-change`). While the store is failing this answers within one store
   *   attempt (see SessionPersistence.changed).
   */
  async changeSettings(session: GateSession, set: Readonly<Record<string, string>>, remove: readonly string[] = [], verb = 'change'): Promise<void> {
    let next: Record<string, string> | undefined;
    for (const key of Object.keys(set)) {
      if (Object.hasOwn(session.settings, key) && session.settings[key] === set[key]) continue;
      next ??= copySettings(session.settings);
      next[key] = set[key];
    }
    for (const key of remove) {
      if (!Object.hasOwn(next ?? session.settings, key)) continue;
      next ??= copySettings(session.settings);
      delete next[key];
    }
    if (!next) return;
    checkSettings(verb, next, Object.keys(set), this.limits);
    session.settings = Object.freeze(next);
    if (!this.persistence) return;
    try {
      await this.persistence.changed(session);
    } catch (err) {
      this.logCause('storage-change', session, session.userId, err, 'settings change live on the gate, not stored yet (retried)', verb);
      throw new PersistenceError('STORAGE_UNAVAILABLE', CLIENT_TEXTS.STORAGE_UNAVAILABLE, err as Error);
    }
  }

  /**
   * Pushes a PUBLISH to one session; `properties` reach an MQTT 5 client only; `qos` 1 is
   * kept until the client's PUBACK and resent on resume (MqttConnection.publishQos1; the
   * body is copied, as the gate holds it). Returns false when its connection is closing, the
   * push was dropped and counted (over the connection's packetLimit: maxPacketSize, or the
   * MQTT 5 client's Maximum Packet Size, MQTT-3.1.2-24; or to a slow consumer while the gate
   * is over maxBufferedBytesTotal), or a QoS 1 push is refused (`session.conn.outbound.refusal`).
   */
  send(session: GateSession, topic: string, body: Buffer, properties?: Mqtt5PushProperties, qos: PushQos = 0): boolean {
    if (session.replay) return session.replay.push(topic, Buffer.from(body), properties, qos);
    if (qos === 1) return session.conn.publishQos1(topic, Buffer.from(body), properties);
    return session.conn.push(topic, body, properties);
  }

  /**
   * Pushes one message to several sessions (sendBatch, sendToUser): at QoS 0 encoded once per
   * protocol encoding, the same bytes shared by every receiver (see PushEncoding); `qos` as
   * {@link send}. Ids not live (or detached) here are skipped. Returns how many got it.
   */
  sendBatch(sessionIds: Iterable<string>, topic: string, body: Buffer, properties?: Mqtt5PushProperties, qos: PushQos = 0): number {
    if (qos === 1) {
      let n = 0;
      for (const id of sessionIds) {
        const s = this.find(id);
        if (s && this.send(s, topic, body, properties, 1)) n++;
      }
      return n;
    }
    const push = new PushEncoding(topic, body, properties);
    let copy: Buffer | undefined;
    let n = 0;
    for (const id of sessionIds) {
      const s = this.find(id);
      if (!s) continue;
      if (s.replay ? s.replay.push(topic, (copy ??= Buffer.from(body)), properties) : push.pushTo(s.conn)) n++;
    }
    return n;
  }

  /**
   * Pushes to every live session of this gate; `properties` reach MQTT 5 clients only; `qos`
   * as {@link send}. At QoS 0 encoded once per protocol encoding and shared by every receiver (see PushEncoding).
   * Returns how many got it.
   */
  broadcast(topic: string, body: Buffer, properties?: Mqtt5PushProperties, qos: PushQos = 0): number {
    if (qos === 1) return this.broadcastQos1(topic, Buffer.from(body), properties);
    const push = new PushEncoding(topic, body, properties);
    let n = 0;
    for (const s of this.registry.all()) if (push.pushTo(s.conn)) n++;
    if (this.detached) {
      const copy = Buffer.from(body);
      for (const s of this.detached.sessions()) if (s.replay?.push(topic, copy, properties)) n++;
    }
    return n;
  }

  /** A QoS 1 broadcast: each session's own packet identifier, so one PUBLISH per session (`copy` shared, never written to). */
  private broadcastQos1(topic: string, copy: Buffer, properties: Mqtt5PushProperties | undefined): number {
    let n = 0;
    for (const s of this.registry.all()) if (s.conn.publishQos1(topic, copy, properties)) n++;
    if (this.detached) for (const s of this.detached.sessions()) if (s.replay?.push(topic, copy, properties, 1)) n++;
    return n;
  }

  /**
   * Closes a session from the server side. With a reason, the client first gets a push on
   * {@link KICK_TOPIC} with `{"reason": ...}` (like Pomelo's kick; MQTT 5 clients too, so one
   * client code path works), then an MQTT 5 client gets DISCONNECT `reasonCode` with the
   * reason as Reason String (MQTT 5.0 §3.14.2.1; default 0x98 Administrative action; 0x8E for
   * a takeover, MQTT-3.1.4-3; 0x8B at gate stop), then the connection closes.
   */
  kick(session: GateSession, reason?: string, reasonCode: number = ReasonCode.AdministrativeAction): void {
    if (session.replay) return this.detached?.discard(session);
    if (reason !== undefined) session.conn.push(KICK_TOPIC, Buffer.from(JSON.stringify({ reason })));
    session.conn.fail(reasonCode, reason === undefined ? 'closed by server' : `kicked: ${reason}`, 'close', reason ?? 'closed by server');
  }

  /**
   * True when the user has a bound session on this gate or, through the user index, on any
   * live gate (mqant's IsConnect only looks at one gate).
   */
  async isConnected(userId: string): Promise<boolean> {
    if (this.registry.byUserId(userId).length > 0) return true;
    return (await this.users.index.locate(userId, this.users.liveGates())).length > 0;
  }
}
