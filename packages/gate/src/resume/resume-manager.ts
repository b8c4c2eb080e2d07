// Just over 400 lines: the resume lifecycle (detach, buffer, token, resume here or by hand-over,
// expiry) shares one per-session record; the store, buffer and token have files of their own.
import type { IPublishPacket } from 'mqtt-packet';
import {
  RpcError,
  decodeSession,
  detachedKey,
  gateCallTimeout,
  gateClient,
  type BufferedPush,
  type HandedOverSession,
  type Logger,
  type RpcTransport,
  type SessionData,
} from '@mqgate/rpc';
import type { StorageHandler } from '@mqgate/storage';
import { State } from '../protocol/state';
import type { MqttConnection } from '../protocol/connection';
import { ReasonCode } from '../protocol/mqtt5';
import type { RequestQueue } from '../request-scheduler';
import { decodePayload, type ReplyTo, type Router } from '../router';
import { GateSession } from '../session';
import type { EmitSessionEvent, SessionManager, UserIndexLink } from '../session-manager';
import type { SessionPersistence } from '../session-persistence';
import type { SessionRegistry } from '../session-registry';
import { DetachedStore, keepsSession, windowOf, type Detached, type DetachPolicy } from './detached-store';
import { issueToken, parseToken, sameHash, type TokenRef } from './token';

/** Topic of the resume request a client sends on a new connection: `gate/HD_resume/<msgid>` `{"token"}`. */
export const RESUME_TOPIC = 'gate/HD_resume';
/** Topic of the push carrying a new resume token: `{"sessionId", "userId", "token", "expiresAt"}` (ms since epoch). */
export const SESSION_TOPIC = 'gate/session';
/** The Error of a resume with an unknown, used or expired token. */
export const RESUME_EXPIRED = 'resume token expired or already used: log in again';

/** What a successful resume answers (the reply's Result), and what the `resume` event carries. */
export interface ResumeResult {
  userId: string;
  sessionId: string;
  settings: Record<string, string>;
  /** True when no push was dropped while detached (always false from the store: the pushes were on the gate that is gone). */
  recovered: boolean;
  /** Pushes replayed after this reply, in their original order. */
  replayed: number;
  /** Pushes dropped past resumeBufferMessages / resumeBufferBytes. */
  lost: number;
}

/** Where a resumed session came from: this gate, another one (its serverId), or the StorageHandler. */
export type ResumeSource = 'local' | 'store' | { serverId: string };

/** True for a topic the gate answers itself as a resume request. */
export function isResumeTopic(topic: string): boolean {
  return topic === RESUME_TOPIC || topic.startsWith(`${RESUME_TOPIC}/`);
}

/** What the resume manager works with, known at gate start. */
export interface ResumeDeps {
  readonly serverId: string;
  readonly policy: DetachPolicy;
  readonly registry: SessionRegistry;
  readonly sessions: SessionManager;
  readonly persistence: SessionPersistence | undefined;
  /** The gate's StorageHandler, for the fallback when the owner gate is gone. */
  readonly storage: StorageHandler | undefined;
  readonly users: UserIndexLink;
  readonly transport: RpcTransport;
  readonly router: Router;
  readonly logger: Logger;
  readonly emit: EmitSessionEvent;
}

/**
 * Resume after a dropped connection (issue 10): keeps bound sessions detached for their
 * window with their missed pushes, issues single-use tokens on `gate/session`, answers
 * `gate/HD_resume` requests (from this gate's detached sessions, another gate's through
 * the `handOver` verb, or the StorageHandler record), and discards detached sessions at a
 * new login of their user.
 */
export class ResumeManager {
  readonly detached: DetachedStore;
  /** Sessions being moved to another connection: their old connection's close keeps them. */
  private readonly moving = new Set<GateSession>();
  /** Token pushes waiting for the end of the request during which the bind happened. */
  private readonly pendingToken = new WeakMap<GateSession, Buffer>();

  constructor(private readonly d: ResumeDeps) {
    this.detached = new DetachedStore(d.policy);
  }

  /**
   * The connection of `session` closed: true when the gate keeps the session (detached, or
   * moving to a new connection), so the caller must not release it.
   */
  keep(session: GateSession, reason: string): boolean {
    if (this.moving.has(session)) return true;
    const window = keepsSession(session, reason, this.d.policy);
    if (window === 0) return false;
    this.detached.add(session, window, (d) => this.expire(d));
    this.moveEntry(session, session.userId, detachedKey(session.userId));
    return true;
  }

  /**
   * Moves the session's user-index entry from key `from` to key `to` (bound ↔ detached, see
   * detachedKey); a failure is logged (the window's end or the next bind cleans up).
   */
  private moveEntry(session: GateSession, from: string, to: string): void {
    const { index, liveGates } = this.d.users;
    const entry = { serverId: this.d.serverId, sessionId: session.sessionId, since: Date.now() };
    index
      .release(from, entry.serverId, entry.sessionId)
      .then(() => index.claim(to, entry, { policy: 'allow' }, liveGates()))
      .catch((err: unknown) => this.d.logger.warn({ userId: session.userId, error: (err as Error).message }, 'resume: user index update failed'));
  }

  /** The session's window ended: freed, its user-index entry removed, its stored settings left as they are. */
  private expire(d: Detached): void {
    const s = d.session;
    s.replay = undefined;
    this.d.persistence?.closed(s);
    this.d.sessions.release(s, detachedKey(s.userId));
  }

  /** A detached session by id (for the session service's verbs). */
  get(sessionId: string): GateSession | undefined {
    return this.detached.get(sessionId)?.session;
  }

  /** The detached sessions. */
  sessions(): IterableIterator<GateSession> {
    return this.detached.sessions();
  }

  /** Drops a detached session at once (a Close, a kick by a new login's policy). */
  discard(session: GateSession): void {
    const d = this.detached.take(session.sessionId);
    if (d) this.expire(d);
  }

  /**
   * A new login (bind) of `userId`: its detached sessions are dropped, on this gate and
   * (through their `Close`) on the others; bounded by the gate call timeout, never rejects.
   */
  async discardUser(userId: string): Promise<void> {
    for (const d of this.detached.ofUser(userId)) this.discard(d.session);
    const { index, liveGates } = this.d.users;
    const remote = (await index.locate(detachedKey(userId), liveGates()).catch(() => [])).filter((l) => l.serverId !== this.d.serverId);
    const timeout = gateCallTimeout(this.d.transport);
    await Promise.all(
      remote.map((l) =>
        gateClient(this.d.transport, l.serverId, { timeout })
          .close(l.sessionId)
          .catch(() => undefined),
      ),
    );
  }

  /** Gate stop: every detached session dropped. */
  close(): void {
    for (const d of this.detached.all()) this.discard(d.session);
  }

  /** A bind is about to be stored: a new token, whose hash goes into the bind's write. */
  binding(session: GateSession): void {
    this.pendingToken.set(session, this.issue(session, false));
  }

  /** A bind completed: its token is pushed after the current request's reply (or now, outside one). */
  bound(session: GateSession): void {
    const queue = session.conn.requests as RequestQueue | undefined;
    if (!queue || queue.load === 0) this.requestDone(session);
  }

  /** An unbind: the token no longer resumes anything. */
  unbound(session: GateSession): void {
    session.resumeHash = undefined;
    this.pendingToken.delete(session);
  }

  /** A request of `session` finished: sends the token push a bind during it left. */
  requestDone(session: GateSession): void {
    const body = this.pendingToken.get(session);
    if (!body) return;
    this.pendingToken.delete(session);
    session.conn.reply(SESSION_TOPIC, body); // part of answering a request: not dropped as a push
  }

  /** Issues a new token (the old one stops working) and stores its hash; returns the `gate/session` push body. */
  private issue(session: GateSession, store: boolean): Buffer {
    const { token, hash } = issueToken(session.userId, session.sessionId);
    session.resumeHash = hash;
    if (store) this.d.persistence?.changed(session).catch(() => undefined); // the stored record carries the new hash
    const expiresAt = Date.now() + windowOf(session.conn, this.d.policy);
    return Buffer.from(JSON.stringify({ sessionId: session.sessionId, userId: session.userId, token, expiresAt }));
  }

  /**
   * Answers a `gate/HD_resume` request of the connection of `guest`. Success re-attaches
   * the session to this connection (replacing the guest session), replies with a
   * {@link ResumeResult}, replays the buffered pushes, then pushes the new token. A failure
   * replies with an Error and changes nothing.
   */
  async handle(guest: GateSession, packet: IPublishPacket): Promise<void> {
    const props = packet.properties;
    const to: ReplyTo =
      props?.responseTopic !== undefined
        ? { topic: props.responseTopic, correlationData: props.correlationData }
        : { topic: packet.topic, correlationData: props?.correlationData };
    const fail = (message: string): void => this.d.router.reply(guest, to, message, null);
    if (this.d.policy.resumeWindow === 0) return fail('resume is turned off on this gate (resumeWindow 0)');
    const body = decodePayload(packet.payload as Buffer);
    const ref = parseToken(Buffer.isBuffer(body) ? undefined : body.token);
    if (typeof ref === 'string') return fail(ref);
    if (guest.userId !== '') return fail('resume: this connection is logged in already; resume on a new connection, before any login');
    let found: { session: GateSession; pushes: BufferedPush[]; lost: number; source: ResumeSource; fromStore: boolean } | undefined;
    try {
      found = this.takeLocal(ref) ?? (await this.takeRemote(guest.conn, ref));
    } catch (err) {
      return fail(err instanceof Error ? err.message : String(err));
    }
    if (!found) return fail(RESUME_EXPIRED);
    const { session, pushes, lost, source } = found;
    const conn = guest.conn;
    if (conn.state !== State.Connected || this.d.registry.get(guest.sessionId) !== guest || guest.userId !== '') {
      // The new connection dropped (or logged in) meanwhile: the session stays detached here, for another try.
      this.detached.add(session, windowOf(conn, this.d.policy) || this.d.policy.resumeWindow, (d) => this.expire(d));
      for (const p of pushes) session.replay?.push(p.topic, p.body, p.properties);
      if (session.replay) session.replay.lost += lost;
      return;
    }
    this.attach(guest, session);
    if (source !== 'local') this.adopt(session);
    const result: ResumeResult = {
      userId: session.userId,
      sessionId: session.sessionId,
      settings: { ...session.settings },
      recovered: lost === 0 && !found.fromStore,
      replayed: pushes.length,
      lost,
    };
    this.d.router.reply(session, to, '', result as never);
    for (const p of pushes) session.conn.push(p.topic, Buffer.from(p.body), p.properties);
    session.conn.reply(SESSION_TOPIC, this.issue(session, true));
    this.d.emit('resume', session.snapshot(), {
      recovered: result.recovered,
      replayed: result.replayed,
      lost,
      from: source === 'local' || source === 'store' ? source : source.serverId,
    });
  }

  /** This gate's detached (or still attached) session named by the token, taken when the token matches. */
  private takeLocal(
    ref: TokenRef,
  ): { session: GateSession; pushes: BufferedPush[]; lost: number; source: ResumeSource; fromStore: boolean } | undefined {
    if (this.get(ref.sessionId)?.userId !== ref.userId && this.d.registry.get(ref.sessionId)?.userId !== ref.userId) return undefined;
    const wasDetached = this.detached.get(ref.sessionId) !== undefined;
    const session = this.claimLocal(ref.sessionId, ref.hash);
    if (!session) return undefined;
    if (wasDetached) this.moveEntry(session, detachedKey(session.userId), session.userId);
    const buffer = session.replay;
    session.replay = undefined;
    return { session, pushes: buffer?.drain() ?? [], lost: buffer?.lost ?? 0, source: 'local', fromStore: false };
  }

  /**
   * Takes a session of this gate for a resume when `hash` is its token's: a detached one
   * leaves the store; an attached one is taken over (its connection closed with 0x8E).
   * Synchronous, so two resumes with one token cannot both get it.
   */
  private claimLocal(sessionId: string, hash: Uint8Array): GateSession | undefined {
    const d = this.detached.get(sessionId);
    if (d) {
      if (!sameHash(d.session.resumeHash, hash)) return undefined;
      this.detached.take(sessionId);
      return d.session;
    }
    const live = this.d.registry.get(sessionId);
    if (!live || !sameHash(live.resumeHash, hash)) return undefined;
    this.moving.add(live);
    try {
      this.d.sessions.kick(live, 'session resumed by a new connection', ReasonCode.SessionTakenOver);
    } finally {
      this.moving.delete(live);
    }
    return live;
  }

  /** The `handOver` verb: releases this gate's session to the gate a client resumes it on. @throws RpcError NO_SESSION (nothing changes). */
  async handOver(sessionId: string, tokenHash: Uint8Array): Promise<HandedOverSession> {
    const wasDetached = this.detached.get(sessionId) !== undefined;
    const session = this.claimLocal(sessionId, tokenHash);
    if (!session) throw new RpcError(`HandOver: ${RESUME_EXPIRED}`, 'NO_SESSION');
    const buffer = session.replay;
    session.replay = undefined;
    this.d.persistence?.closed(session);
    const key = wasDetached ? detachedKey(session.userId) : session.userId;
    await this.d.users.index.release(key, this.d.serverId, sessionId).catch(() => this.d.sessions.release(session, key));
    return {
      userId: session.userId,
      traceId: session.traceId,
      settings: { ...session.settings },
      pushes: buffer?.drain() ?? [],
      lost: buffer?.lost ?? 0,
      tokenHash: Buffer.from(tokenHash),
    };
  }

  /**
   * A session detached elsewhere: from its owner gate (found in the user index) over the
   * transport, else (owner gone or not answering) from the StorageHandler record.
   */
  private async takeRemote(
    conn: MqttConnection<GateSession>,
    ref: TokenRef,
  ): Promise<{ session: GateSession; pushes: BufferedPush[]; lost: number; source: ResumeSource; fromStore: boolean } | undefined> {
    const users = this.d.users;
    const live = users.liveGates();
    const [detached, bound] = await Promise.all([users.index.locate(detachedKey(ref.userId), live), users.index.locate(ref.userId, live)]);
    const owner = [...detached, ...bound].find((l) => l.sessionId === ref.sessionId && l.serverId !== this.d.serverId);
    if (owner) {
      try {
        const h = await gateClient(this.d.transport, owner.serverId, { timeout: gateCallTimeout(this.d.transport) }).handOver(
          ref.sessionId,
          ref.hash,
        );
        const session = new GateSession(conn, this.d.serverId, {
          sessionId: ref.sessionId,
          traceId: h.traceId,
          userId: h.userId,
          settings: Object.freeze({ ...h.settings }),
        });
        return { session, pushes: h.pushes, lost: h.lost, source: { serverId: owner.serverId }, fromStore: false };
      } catch (err) {
        if (err instanceof RpcError && err.code === 'NO_SESSION') return undefined;
        // The owner is gone (crashed, or stopped meanwhile): the stored record is all there is.
        const gone = !this.d.users.liveGates().some((g) => g.serverId === owner.serverId);
        if (gone || (err instanceof RpcError && (err.code === 'NO_SERVER' || err.code === 'CLOSED'))) {
          return this.fromStore(
            conn,
            ref,
            new Set(
              this.d.users
                .liveGates()
                .map((g) => g.serverId)
                .filter((id) => id !== owner.serverId),
            ),
          );
        }
        // The owner is live but did not hand the session over (busy, deadline): it may still hold
        // the session, so rebuilding it from the store would let one token resume twice.
        this.d.logger.warn(
          { owner: owner.serverId, code: (err as RpcError).code, error: (err as Error).message },
          'resume: the live owner gate did not hand the session over',
        );
        throw new RpcError('the gate holding this session did not answer: try again', 'UNAVAILABLE');
      }
    }
    return this.fromStore(conn, ref, new Set(live.map((g) => g.serverId)));
  }

  /**
   * The fallback when the owner gate is gone: the stored record, if its token hash matches
   * and its window has not ended, and its gate is not one of `liveOwners` (a live owner
   * would have answered). Two gates racing here: the user index's atomic claim under
   * `reject-new` on a per-session lock key lets exactly one through.
   */
  private async fromStore(
    conn: MqttConnection<GateSession>,
    ref: TokenRef,
    liveOwners: ReadonlySet<string>,
  ): Promise<{ session: GateSession; pushes: BufferedPush[]; lost: number; source: ResumeSource; fromStore: boolean } | undefined> {
    const store = this.d.storage;
    if (!store) return undefined;
    let record: SessionData | undefined;
    try {
      const bytes = await store.query(ref.userId);
      record = bytes ? decodeSession(bytes) : undefined;
    } catch (err) {
      throw new Error(`resume: the session store failed: ${(err as Error).message}`);
    }
    if (!record || record.sessionId !== ref.sessionId || !record.resume || record.resume.expiresAt < Date.now()) return undefined;
    if (!sameHash(record.resume.tokenHash, ref.hash) || record.serverId === this.d.serverId || liveOwners.has(record.serverId)) return undefined;
    const lock = `\u0000resume\u0000${ref.sessionId}`;
    const claim = await this.d.users.index.claim(
      lock,
      { serverId: this.d.serverId, sessionId: ref.sessionId, since: Date.now() },
      { policy: 'reject-new' },
      this.d.users.liveGates(),
    );
    if (claim.rejected) return undefined;
    setTimeout(
      () => void this.d.users.index.release(lock, this.d.serverId, ref.sessionId).catch(() => undefined),
      record.resume.expiresAt - Date.now(),
    ).unref();
    const session = new GateSession(conn, this.d.serverId, {
      sessionId: ref.sessionId,
      traceId: record.traceId,
      userId: ref.userId,
      settings: Object.freeze({ ...record.settings }),
    });
    return { session, pushes: [], lost: 0, source: 'store', fromStore: true };
  }

  /** A session from elsewhere: persisted from now on (no query: a resume is not a bind) and recorded in the user index. */
  private adopt(session: GateSession): void {
    this.d.persistence?.adopted(session).catch(() => undefined);
    const entry = { serverId: this.d.serverId, sessionId: session.sessionId, since: Date.now() };
    this.d.users.index.claim(session.userId, entry, { policy: 'allow' }, this.d.users.liveGates()).catch((err: unknown) => {
      this.d.logger.warn({ userId: session.userId, error: (err as Error).message }, 'resume: user index update failed');
    });
  }

  /** Replaces the connection's guest session by `session`, atomically (no await). */
  private attach(guest: GateSession, session: GateSession): void {
    const conn = guest.conn;
    const r = this.d.registry;
    r.remove(guest);
    session.attach(conn);
    conn.session = session;
    const queue = conn.requests as RequestQueue | undefined;
    if (queue) queue.session = session;
    const userId = session.userId;
    session.userId = '';
    r.add(session);
    r.setUser(session, userId);
    this.d.emit('disconnect', guest.snapshot(), `replaced by resumed session ${session.sessionId}`);
  }
}
