import type { MqttConnection } from '../protocol/connection';
import type { GateSession } from '../session/session';
import { closedConnection } from './closed-connection';
import { DetachedBytes } from './detached-bytes';
import { ReplayBuffer } from './replay-buffer';
import { takeUnacked } from './replay-pushes';

/** Bounds and window of detached sessions (gate options). */
export interface DetachPolicy {
  /** Gate option resumeWindow, ms; 0 = resume off. */
  resumeWindow: number;
  resumeBufferMessages: number;
  resumeBufferBytes: number;
  /** Gate option maxDetached: detached sessions held at once; at the cap the oldest is dropped. 0 = no cap. */
  maxDetached: number;
  /** Gate option maxDetachedBytesTotal: bytes all detached sessions hold at once; past it the oldest pushes are evicted. 0 = no bound. */
  maxDetachedBytesTotal: number;
}

/** One detached session: kept until `expiresAt` (ms since epoch). */
export interface Detached {
  readonly session: GateSession;
  readonly expiresAt: number;
  readonly timer: NodeJS.Timeout;
}

/**
 * The resume window of a connection's session, ms: the gate's resumeWindow; for an MQTT 5
 * client its Session Expiry Interval (seconds, as last set by CONNECT or DISCONNECT),
 * capped by resumeWindow (0: not kept).
 */
export function windowOf(conn: MqttConnection<GateSession>, policy: DetachPolicy): number {
  const max = policy.resumeWindow;
  if (max === 0 || !conn.v5) return max;
  return Math.min(max, conn.v5.sessionExpiryInterval * 1000);
}

/**
 * Whether a session whose connection just closed for `reason` is kept detached: bound,
 * holding a resume token, with a window above 0, and not closed on purpose (a clean
 * DISCONNECT at 3.1 / 3.1.1, a kick, a takeover, a gate stop). An MQTT 5 clean DISCONNECT
 * with a Session Expiry Interval above 0 is kept (MQTT 5.0 §3.1.2.11.2).
 */
export function keepsSession(session: GateSession, reason: string, policy: DetachPolicy): number {
  if (session.userId === '' || session.resumeHash === undefined) return 0;
  if (reason.startsWith('kicked:') || reason.startsWith('closed by server')) return 0;
  const window = windowOf(session.conn, policy);
  if (window === 0) return 0;
  if (!session.conn.v5 && reason.startsWith('client disconnect')) return 0;
  return window;
}

/**
 * The gate's detached sessions (a dropped bound session is kept detached for its resume window), by session and user id, each with its
 * expiry timer (unref'd). Not in the SessionRegistry: a detached session is not connected,
 * not counted as online, and gets no heartbeat.
 */
export class DetachedStore {
  private readonly bySession = new Map<string, Detached>();
  private readonly byUser = new Map<string, Set<string>>();
  /** What the detached sessions hold, bytes, bounded by maxDetachedBytesTotal. */
  readonly bytes: DetachedBytes;

  /**
   * @param evicted called with the oldest detached session when an add finds the store at
   *   `maxDetached` (already taken out of the store; the caller frees it).
   * @param bytesEvicted called when maxDetachedBytesTotal evicted `pushes` of a session's pushes.
   */
  constructor(
    private readonly policy: DetachPolicy,
    private readonly evicted: (d: Detached) => void = () => undefined,
    bytesEvicted: (session: GateSession, pushes: number) => void = () => undefined,
  ) {
    this.bytes = new DetachedBytes(policy.maxDetachedBytesTotal, () => {
      let n = 0;
      for (const d of this.bySession.values()) {
        if (this.bytes.excess === 0) break;
        const evicted = d.session.replay?.evictOldest(this.bytes.excess) ?? 0;
        if (evicted > 0) bytesEvicted(d.session, evicted);
        n += evicted;
      }
      return n;
    });
  }

  get size(): number {
    return this.bySession.size;
  }

  /**
   * Detaches `session` for `window` ms; `expire` runs when the window ends (unless taken
   * first). At `maxDetached` the oldest detached session (first detached: the Map keeps
   * insertion order) is taken out and handed to `evicted` first. The QoS 1 pushes its
   * connection had not had acknowledged move into its replay buffer, and the session keeps
   * a {@link closedConnection} in place of the closed connection, which is freed.
   */
  add(session: GateSession, window: number, expire: (d: Detached) => void): Detached {
    const cap = this.policy.maxDetached;
    while (cap > 0 && this.bySession.size >= cap) {
      const oldest = this.take(this.bySession.keys().next().value as string);
      if (oldest) this.evicted(oldest);
    }
    const replay = new ReplayBuffer(this.policy.resumeBufferMessages, this.policy.resumeBufferBytes, 0, this.bytes);
    session.replay = replay;
    const expiresAt = Date.now() + window;
    session.resumeUntil = expiresAt;
    const d: Detached = {
      session,
      expiresAt,
      timer: setTimeout(() => {
        if (this.take(session.sessionId) === d) expire(d);
      }, window).unref(),
    };
    this.bySession.set(session.sessionId, d);
    let set = this.byUser.get(session.userId);
    if (!set) this.byUser.set(session.userId, (set = new Set()));
    set.add(session.sessionId);
    const carried = takeUnacked(session.conn);
    session.conn = closedConnection(session.conn);
    replay.carry(carried); // charged once the session is in the store: it may be evicted too
    return d;
  }

  get(sessionId: string): Detached | undefined {
    return this.bySession.get(sessionId);
  }

  /** Removes and returns a detached session (its timer cancelled), or undefined. */
  take(sessionId: string): Detached | undefined {
    const d = this.bySession.get(sessionId);
    if (!d) return undefined;
    clearTimeout(d.timer);
    d.session.replay?.release();
    this.bySession.delete(sessionId);
    const set = this.byUser.get(d.session.userId);
    set?.delete(sessionId);
    if (set?.size === 0) this.byUser.delete(d.session.userId);
    return d;
  }

  /** The detached sessions of a user on this gate. */
  ofUser(userId: string): Detached[] {
    return [...(this.byUser.get(userId) ?? [])].map((id) => this.bySession.get(id) as Detached);
  }

  sessions(): IterableIterator<GateSession> {
    return (function* (m: Map<string, Detached>) {
      for (const d of m.values()) yield d.session;
    })(this.bySession);
  }

  all(): Detached[] {
    return [...this.bySession.values()];
  }
}
