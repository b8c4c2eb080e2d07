// About 620 lines: the resume lifecycle (detach, buffer, token, resume by token or at CONNECT,
// here or by hand-over, re-detach, expiry) shares one per-session record and the same take /
// hand-over steps; the store, buffer and token have files of their own.
import type { IPublishPacket } from 'mqtt-packet';
import {
  CLIENT_TEXTS,
  RpcError,
  decodeSession,
  gateClient,
  type BufferedPush,
  type HandedOverSession,
  type Logger,
  type RpcTransport,
  type SessionData,
} from '@mqgate/rpc';
import { detachedKey, gateCallTimeout } from '@mqgate/rpc/internal';
import type { StorageHandler } from '@mqgate/storage';
import { State } from '../protocol/state';
import type { MqttConnection } from '../protocol/connection';
import { ReasonCode } from '../protocol/mqtt5';
import type { RequestQueue } from '../routing/scheduler';
import { decodePayload } from '../routing/envelope';
import type { ReplyTo, Router } from '../routing/router';
import { GateSession } from '../session/session';
import type { EmitSessionEvent, SessionManager, UserIndexLink } from '../session/manager';
import type { SessionPersistence } from '../persistence/persistence';
import type { SessionRegistry } from '../session/registry';
import { DetachedStore, keepsSession, windowOf, type Detached, type DetachPolicy } from './detached-store';
import { replayPushes, takeUnacked } from './replay-pushes';
import { connectProof, issueToken, parseToken, sameHash, type TokenRef } from './token';
import type { WarnLog } from '../ops/warn-log';

/** Topic of the resume request a client sends on a new connection: `gate/HD_resume/<msgid>` `{"token"}`. */
export const RESUME_TOPIC = 'gate/HD_resume';
/** Topic of the push carrying a new resume token: `{"sessionId", "userId", "token", "expiresAt"}` (ms since epoch). */
export const SESSION_TOPIC = 'gate/session';
/** The resume of a banned user (gate.ban({ userId })): refused (a ban also drops the user's detached sessions here). */
const RESUME_BANNED = CLIENT_TEXTS.BANNED;
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
  /** Rate-limited warn lines (kind `limit:maxDetached`). */
  readonly warn: WarnLog;
  /** A detached session dropped at maxDetached (the gate's metrics count it). */
  readonly droppedAtCap?: () => void;
  /** True when a user id is banned (gate.ban): its resumes are refused with BANNED. */
  readonly userBanned?: (userId: string) => boolean;
}

/** A session taken for a resume, with what it missed and where it came from. */
interface Found {
  session: GateSession;
  pushes: BufferedPush[];
  lost: number;
  source: ResumeSource;
  fromStore: boolean;
}

/**
 * Resume after a dropped connection: keeps bound sessions detached for their
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
  /** Sessions resumed at CONNECT (rule 6), by connection, until their CONNACK is sent: their pushes go out after it. */
  private readonly atConnack = new WeakMap<MqttConnection<GateSession>, Found>();
  /** The user-index move under way per session ({@link moveEntry}), so that moves run in order. */
  private readonly moves = new WeakMap<GateSession, Promise<void>>();

  constructor(private readonly d: ResumeDeps) {
    this.detached = new DetachedStore(
      d.policy,
      (old) => this.droppedAtCap(old),
      (session, pushes) => this.evictedAtBytes(session, pushes),
    );
  }

  /** maxDetachedBytesTotal took the oldest pushes of a detached session: its resume reports them in `lost`. */
  private evictedAtBytes(session: GateSession, pushes: number): void {
    this.d.warn(
      'limit:maxDetachedBytesTotal',
      { maxDetachedBytesTotal: this.d.policy.maxDetachedBytesTotal, userId: session.userId, sessionId: session.sessionId, pushes },
      "maxDetachedBytesTotal reached: the oldest detached sessions' oldest pushes were dropped (their resume reports them as lost)",
    );
  }

  /** The store was at maxDetached: its oldest session's window ends now. */
  private droppedAtCap(old: Detached): void {
    this.d.droppedAtCap?.();
    this.d.warn(
      'limit:maxDetached',
      { maxDetached: this.d.policy.maxDetached, userId: old.session.userId, sessionId: old.session.sessionId },
      'maxDetached reached: the oldest detached session was dropped',
    );
    this.expire(old);
  }

  /**
   * The connection of `session` closed: true when the gate keeps the session (detached, or
   * moving to a new connection), so the caller must not release it.
   */
  keep(session: GateSession, reason: string): boolean {
    if (this.moving.has(session)) return true;
    const window = keepsSession(session, reason, this.d.policy);
    if (window === 0) return false;
    const early = this.atConnack.get(session.conn);
    this.atConnack.delete(session.conn);
    this.detached.add(session, window, (d) => this.expire(d));
    if (early) this.refill(session, early); // resumed at CONNECT, closed before its CONNACK: what it had not got yet stays buffered
    this.moveEntry(session, session.userId, detachedKey(session.userId));
    // The stored record's resume expiry becomes detach time + window (GateSession.resumeUntil).
    this.d.persistence?.changed(session).catch(() => undefined);
    return true;
  }

  /** Puts a taken session's pushes back into its (new) replay buffer. */
  private refill(session: GateSession, f: Found): void {
    const replay = session.replay;
    if (!replay) return;
    for (const p of f.pushes) replay.push(p.topic, p.body, p.properties, p.qos, p.messageId);
    replay.lost += f.lost;
  }

  /**
   * A session taken for a resume whose new connection closed meanwhile: detached again here,
   * for a fresh window, with its pushes, findable from every gate (the user index's
   * detachedKey) and, for one from elsewhere, persisted by this gate from now on.
   */
  private redetach(conn: MqttConnection<GateSession>, f: Found): void {
    const s = f.session;
    this.detached.add(s, windowOf(conn, this.d.policy) || this.d.policy.resumeWindow, (d) => this.expire(d));
    this.refill(s, f);
    if (f.source === 'local') {
      this.moveEntry(s, s.userId, detachedKey(s.userId));
      this.d.persistence?.changed(s).catch(() => undefined); // the record's expiry: the new window's end
      return;
    }
    const entry = { serverId: this.d.serverId, sessionId: s.sessionId, since: Date.now() };
    this.d.users.index.claim(detachedKey(s.userId), entry, { policy: 'allow' }, this.d.users.liveGates()).catch((err: unknown) => {
      this.d.logger.warn({ userId: s.userId, error: (err as Error).message }, 'resume: user index update failed');
    });
    this.d.persistence?.adopted(s).catch(() => undefined);
  }

  /**
   * Moves the session's user-index entry from key `from` to key `to` (bound ↔ detached, see
   * detachedKey); a failure is logged (the window's end or the next bind cleans up).
   */
  private moveEntry(session: GateSession, from: string, to: string): void {
    const { index, liveGates } = this.d.users;
    const entry = { serverId: this.d.serverId, sessionId: session.sessionId, since: Date.now() };
    // Claim first, then release: in between, another gate's lookup (which reads both keys)
    // still finds this gate as the owner; the other order left a gap where a resume on
    // another gate found no owner and was refused, and a sendToUser was lost.
    // One move at a time per session: two back to back (a resume whose connection dropped
    // at once: bound, then detached again) would otherwise interleave as claim, claim,
    // release, release, and leave no entry at all.
    const claim = (): Promise<unknown> => index.claim(to, entry, { policy: 'allow' }, liveGates());
    const before = this.moves.get(session);
    const move = (before ? before.then(claim) : claim()) // at once when no move is under way
      .then(() => index.release(from, entry.serverId, entry.sessionId))
      .catch((err: unknown) => this.d.logger.warn({ userId: session.userId, error: (err as Error).message }, 'resume: user index update failed'));
    this.moves.set(session, move);
    void move.then(() => {
      if (this.moves.get(session) === move) this.moves.delete(session);
    });
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

  /**
   * A bind completed: its token is pushed after the current request's reply (or now, outside
   * one); a bind before the CONNACK (JWT at CONNECT) waits for {@link connected}.
   */
  bound(session: GateSession): void {
    if (session.conn.state !== State.Connected) return;
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

  /**
   * The CONNACK of the connection of `session` was sent: a session resumed at CONNECT gets
   * its missed pushes, then its new token, and the `resume` event fires; a session bound
   * before the CONNACK (JWT) gets its token push.
   */
  connected(session: GateSession): void {
    const conn = session.conn;
    const f = this.atConnack.get(conn);
    if (!f) return this.requestDone(session);
    this.atConnack.delete(conn);
    replayPushes(conn, f.pushes);
    conn.reply(SESSION_TOPIC, this.issue(session, true));
    const recovered = f.lost === 0 && !f.fromStore;
    this.d.emit('resume', session.snapshot(), {
      recovered,
      replayed: f.pushes.length,
      lost: f.lost,
      from: f.source === 'local' || f.source === 'store' ? f.source : f.source.serverId,
    });
  }

  /**
   * Rule 6, MQTT-native persistent sessions: a CONNECT whose user the authenticate hook (or
   * the JWT) identified. Clean Session 0 / Clean Start 0: the detached session of that user
   * with this client id (on this gate, a live one here with the same client id taken over,
   * or one detached on another gate through `handOver`) is attached to `conn` and registered;
   * its pushes and new token follow the CONNACK ({@link connected}). Clean 1: that detached
   * session is discarded (MQTT-3.1.2-6). Bounded by the gate call timeout; never rejects.
   * @returns true when a session was resumed: the CONNACK says Session Present 1 (MQTT-3.2.2-2).
   */
  async atConnect(conn: MqttConnection<GateSession>, userId: string, clean: boolean): Promise<boolean> {
    if (this.d.policy.resumeWindow === 0 || userId === '' || this.d.userBanned?.(userId)) return false;
    const clientId = conn.clientId;
    let found: Found | undefined;
    try {
      if (clean) {
        for (const d of this.detached.ofUser(userId)) if (d.session.clientId === clientId) this.discard(d.session);
        await this.takeRemoteByClient(conn, userId, clientId); // handed over and dropped: discarded there
        return false;
      }
      found = this.takeByClient(userId, clientId) ?? (await this.takeRemoteByClient(conn, userId, clientId));
    } catch (err) {
      this.d.logger.warn({ userId, clientId, error: (err as Error).message }, 'resume at CONNECT failed: a fresh session');
      return false;
    }
    if (!found) return false;
    if (conn.state !== State.Connecting) {
      this.redetach(conn, found);
      return false;
    }
    const session = found.session;
    session.attach(conn);
    conn.session = session;
    const r = this.d.registry;
    session.userId = '';
    r.add(session, false); // the client id index (takeover) is set at CONNACK
    r.setUser(session, userId);
    if (found.source !== 'local') this.adopt(session);
    this.atConnack.set(conn, found);
    return true;
  }

  /** This gate's detached session of `userId` with `clientId`, or its live one with that client id (taken over). */
  private takeByClient(userId: string, clientId: string): Found | undefined {
    const d = this.detached.ofUser(userId).find((x) => x.session.clientId === clientId);
    const live = this.d.registry.byClientId(clientId);
    const session = d?.session ?? (live?.userId === userId ? live : undefined);
    if (!session || session.resumeHash === undefined) return undefined;
    return this.takeLocal({ userId, sessionId: session.sessionId, hash: session.resumeHash });
  }

  /** A session of `userId` with `clientId` detached on another gate, handed over (`handOver` with a {@link connectProof}). */
  private async takeRemoteByClient(conn: MqttConnection<GateSession>, userId: string, clientId: string): Promise<Found | undefined> {
    const users = this.d.users;
    const remote = (await users.index.locate(detachedKey(userId), users.liveGates())).filter((l) => l.serverId !== this.d.serverId);
    const proof = connectProof(userId, clientId);
    const timeout = gateCallTimeout(this.d.transport);
    for (const l of remote) {
      try {
        const h = await gateClient(this.d.transport, l.serverId, { timeout }).handOver(l.sessionId, proof);
        return { session: this.restored(conn, l.sessionId, h), pushes: h.pushes, lost: h.lost, source: { serverId: l.serverId }, fromStore: false };
      } catch (err) {
        if (!(err instanceof RpcError && err.code === 'NO_SESSION')) {
          this.d.logger.warn({ owner: l.serverId, userId, error: (err as Error).message }, 'resume at CONNECT: the owner gate did not hand over');
        }
      }
    }
    return undefined;
  }

  /** A session handed over by another gate, re-created under its session id with the token hash it had. */
  private restored(conn: MqttConnection<GateSession>, sessionId: string, h: HandedOverSession): GateSession {
    const session = new GateSession(conn, this.d.serverId, {
      sessionId,
      traceId: h.traceId,
      userId: h.userId,
      settings: Object.freeze({ ...h.settings }),
    });
    session.resumeHash = Buffer.from(h.tokenHash);
    return session;
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
    if (this.d.userBanned?.(ref.userId)) return fail(RESUME_BANNED);
    let found: Found | undefined;
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
      return this.redetach(conn, found);
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
    replayPushes(session.conn, pushes);
    session.conn.reply(SESSION_TOPIC, this.issue(session, true));
    this.d.emit('resume', session.snapshot(), {
      recovered: result.recovered,
      replayed: result.replayed,
      lost,
      from: source === 'local' || source === 'store' ? source : source.serverId,
    });
  }

  /** This gate's detached (or still attached) session named by the token, taken when the token matches. */
  private takeLocal(ref: TokenRef): Found | undefined {
    if (this.get(ref.sessionId)?.userId !== ref.userId && this.d.registry.get(ref.sessionId)?.userId !== ref.userId) return undefined;
    const wasDetached = this.detached.get(ref.sessionId) !== undefined;
    const session = this.claimLocal(ref.sessionId, ref.hash);
    if (!session) return undefined;
    if (wasDetached) this.moveEntry(session, detachedKey(session.userId), session.userId);
    const buffer = session.replay;
    session.replay = undefined;
    return {
      session,
      pushes: [...takeUnacked(session.conn), ...(buffer?.drain() ?? [])],
      lost: buffer?.lost ?? 0,
      source: 'local',
      fromStore: false,
    };
  }

  /**
   * Takes a session of this gate for a resume when `hash` is its token's: a detached one
   * leaves the store; an attached one is taken over (its connection closed with 0x8E).
   * Synchronous, so two resumes with one token cannot both get it. A detached one also
   * matches the {@link connectProof} of its user and client id (rule 6), an attached one never.
   */
  private claimLocal(sessionId: string, hash: Uint8Array): GateSession | undefined {
    const d = this.detached.get(sessionId);
    if (d) {
      const s = d.session;
      if (!sameHash(s.resumeHash, hash) && !sameHash(connectProof(s.userId, s.clientId), hash)) return undefined;
      this.detached.take(sessionId);
      return s;
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

  /**
   * The `handOver` verb: releases this gate's session to the gate a client resumes it on;
   * `tokenHash` is the token's hash, or for a detached session the {@link connectProof} of a
   * CONNECT resume (rule 6). The result's tokenHash is the session's token hash.
   * @throws RpcError NO_SESSION (nothing changes).
   */
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
      pushes: [...takeUnacked(session.conn), ...(buffer?.drain() ?? [])],
      lost: buffer?.lost ?? 0,
      tokenHash: Buffer.from(session.resumeHash ?? tokenHash),
    };
  }

  /**
   * A session detached elsewhere: from its owner gate (found in the user index) over the
   * transport, else (owner gone or not answering) from the StorageHandler record.
   */
  private async takeRemote(conn: MqttConnection<GateSession>, ref: TokenRef): Promise<Found | undefined> {
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
        const session = this.restored(conn, ref.sessionId, h);
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
  private async fromStore(conn: MqttConnection<GateSession>, ref: TokenRef, liveOwners: ReadonlySet<string>): Promise<Found | undefined> {
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
    session.resumeHash = ref.hash;
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
