import {
  KICK_TOPIC,
  RpcError,
  SessionNotFoundError,
  type DuplicateLoginPolicy,
  type LiveGate,
  type Logger,
  type Mqtt5PushProperties,
  type SessionData,
  type UserIndex,
  type UserLocation,
} from '@mqgate/rpc';
import { ReasonCode } from './protocol/mqtt5';
import { PersistenceError } from './errors';
import type { GateSession } from './session';
import type { SessionPersistence } from './session-persistence';
import type { SessionRegistry } from './session-registry';
import { checkSettings, checkUserId, type SessionLimits } from './session-limits';
import { copySettings } from './settings';

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
  /** A session ended; `reason` says why (`client disconnect`, `connection lost`, `keepalive timeout (MQTT-3.1.2-24)`, `kicked: ...`). */
  disconnect: [session: SessionData, reason: string];
  /** A session was bound to a user id. */
  bind: [session: SessionData, userId: string];
  /** A session was unbound; `userId` is the one it had. */
  unbind: [session: SessionData, userId: string];
  /**
   * A session was resumed on a new connection of this gate (`gate/HD_resume`, issue 10):
   * the same sessionId as before its connection dropped; `from` is `local`, `store` or the
   * serverId of the gate it was handed over from.
   */
  resume: [session: SessionData, info: { recovered: boolean; replayed: number; lost: number; from: string }];
}

/** The gate's detached sessions as the SessionManager sees them (resume/resume-manager.ts). */
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
  /** True when a user id is banned (gate.ban, admission.ts): its Bind fails with code BANNED. */
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
    this.userBanned = deps.userBanned;
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
   *   Unicode (nothing changes); PersistenceError (code STORAGE) when the store failed (the
   *   session is bound all the same); RpcError BANNED when the user id is banned (gate.ban).
   */
  bind(session: GateSession, userId: string): Promise<void> {
    try {
      checkUserId(`Bind(${JSON.stringify(userId.slice(0, 40))})`, userId, this.limits);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.userBanned?.(userId)) return Promise.reject(new RpcError(`Bind(${JSON.stringify(userId.slice(0, 40))}): the user is banned`, 'BANNED'));
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
      throw new PersistenceError(
        `Bind(${JSON.stringify(userId)}): the session is bound on the gate, but the session store failed ` +
          '(stored settings are merged and the session stored once it is back)',
        failure,
      );
    }
  }

  /**
   * Records the session in the user index under the duplicate-login policy, and closes the
   * sessions the policy displaces (here or on other gates) before the bind completes.
   * @throws RpcError DUPLICATE_LOGIN when the policy rejects the new bind; USER_INDEX when
   *   the index cannot be reached; NO_SESSION when the session closed meanwhile.
   */
  private async claim(session: GateSession, userId: string, users: UserIndexLink): Promise<void> {
    const entry = { serverId: session.serverId, sessionId: session.sessionId, since: Date.now() };
    let result;
    try {
      result = await users.index.claim(userId, entry, users.policy, users.liveGates());
    } catch (err) {
      throw new RpcError(`Bind(${JSON.stringify(userId)}): the user index failed: ${(err as Error).message}`, 'USER_INDEX');
    }
    if (result.rejected) {
      throw new RpcError(
        `Bind(${JSON.stringify(userId)}): the user is already logged in with ${result.existing.length} session(s) ` +
          `and the duplicate login policy (${users.policy.policy}) rejects a new one`,
        'DUPLICATE_LOGIN',
      );
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
   * @throws PersistenceError when the delete failed (the session is unbound all the same).
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
      throw new PersistenceError(
        `UnBind: the session is unbound, but deleting the stored session of ${JSON.stringify(previous)} failed`,
        err as Error,
      );
    }
  }

  /**
   * Applies a settings change: `set` keys are written, `remove` keys deleted. Only the keys
   * named change (mqant's Push rewrites every key it is sent). While bound with a
   * StorageHandler, resolves once the change is stored (changes in one tick share a write).
   * @param verb names the change in errors, e.g. `Set("level")`.
   * @throws LimitError (code LIMIT) or BadArgumentError (ill-formed Unicode) when the change
   *   would take the session past a limit (see SessionLimits): nothing changes.
   * @throws PersistenceError (code STORAGE) when the store failed: the change is live, the
   *   gate retries the write until it is stored.
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
      throw new PersistenceError(`${verb}: the change is live on the gate but not persisted (the gate retries until it is stored)`, err as Error);
    }
  }

  /**
   * Pushes a QoS 0 PUBLISH to one session; `properties` reach an MQTT 5 client only.
   * Returns false when its connection is closing or the push exceeds the MQTT 5 client's
   * Maximum Packet Size (dropped and counted, MQTT-3.1.2-25).
   */
  send(session: GateSession, topic: string, body: Buffer, properties?: Mqtt5PushProperties): boolean {
    if (session.replay) return session.replay.push(topic, Buffer.from(body), properties);
    return session.conn.publish(topic, body, properties);
  }

  /** Pushes to every live session of this gate; `properties` reach MQTT 5 clients only. Returns how many got it. */
  broadcast(topic: string, body: Buffer, properties?: Mqtt5PushProperties): number {
    let n = 0;
    for (const s of this.registry.all()) if (s.conn.publish(topic, body, properties)) n++;
    if (this.detached) {
      const copy = Buffer.from(body);
      for (const s of this.detached.sessions()) if (s.replay?.push(topic, copy, properties)) n++;
    }
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
    if (reason !== undefined) session.conn.publish(KICK_TOPIC, Buffer.from(JSON.stringify({ reason })));
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
