import type { SessionCounts } from '@mqgate/rpc';
import type { GateSession } from './session';

/**
 * The gate's indexes of live sessions: by session id, by user id (several sessions may share
 * one; mqant has no user index, users asked for it in issue #80) and by MQTT client id
 * (for takeover, MQTT-3.1.4-2).
 */
export class SessionRegistry {
  private readonly bySession = new Map<string, GateSession>();
  private readonly byUser = new Map<string, Set<GateSession>>();
  private readonly byClient = new Map<string, GateSession>();

  /** Indexes a session; `byClientId` false leaves the client id index (takeover) for a later add. */
  add(session: GateSession, byClientId = true): void {
    this.bySession.set(session.sessionId, session);
    if (byClientId) this.byClient.set(session.clientId, session);
  }

  remove(session: GateSession): void {
    if (this.bySession.get(session.sessionId) !== session) return;
    this.bySession.delete(session.sessionId);
    if (this.byClient.get(session.clientId) === session) this.byClient.delete(session.clientId);
    this.dropUser(session);
  }

  get(sessionId: string): GateSession | undefined {
    return this.bySession.get(sessionId);
  }

  byClientId(clientId: string): GateSession | undefined {
    return this.byClient.get(clientId);
  }

  /** Sessions of a user on this gate (empty when none). */
  byUserId(userId: string): readonly GateSession[] {
    const set = this.byUser.get(userId);
    return set ? [...set] : [];
  }

  /** Sets the session's user id and indexes it. */
  setUser(session: GateSession, userId: string): void {
    if (session.userId === userId) return;
    this.dropUser(session);
    session.userId = userId;
    if (userId === '' || !this.bySession.has(session.sessionId)) return;
    let set = this.byUser.get(userId);
    if (!set) this.byUser.set(userId, (set = new Set()));
    set.add(session);
  }

  private dropUser(session: GateSession): void {
    if (session.userId === '') return;
    const set = this.byUser.get(session.userId);
    if (!set) return;
    set.delete(session);
    if (set.size === 0) this.byUser.delete(session.userId);
  }

  all(): IterableIterator<GateSession> {
    return this.bySession.values();
  }

  counts(): SessionCounts {
    let bound = 0;
    for (const set of this.byUser.values()) bound += set.size;
    const total = this.bySession.size;
    return { total, bound, guests: total - bound };
  }
}
