import { EventEmitter } from 'node:events';
import { decodeSession, makeSessionData, type Logger, type SessionData } from '@mqgate/rpc';
import type { StorageHandler } from '@mqgate/storage';
import type { GateSession } from './session';
import { copySettings } from './session-manager';

/** What a storage failure event carries. */
export interface StorageFailure {
  operation: 'storage' | 'delete' | 'query' | 'heartbeat';
  userId: string;
  sessionId: string;
  error: Error;
}

/** Store calls made and failed since start. */
export interface StorageStats {
  queries: number;
  writes: number;
  heartbeats: number;
  deletes: number;
  errors: number;
}

/** Persistence state of one bound session. Lives on GateSession.persist. */
export class PersistState {
  /** Stored settings have been merged since bind (a failed query is retried before any write). */
  restored = false;
  /** Bumped by every change; `stored` is the last version written. */
  version = 0;
  stored = 0;
  /** Write scheduled for the current tick, shared by every change made in it. */
  scheduled: Promise<void> | undefined;
  /** The write in progress (never rejects). */
  chain: Promise<void> = Promise.resolve();
  failing = false;
  retryTimer: NodeJS.Timeout | undefined;
  retryDelay = 0;
  lastHeartbeat = Date.now();
  heartbeating = false;
  /** False once nothing more is to be written for it (stored after unbind/close, or deleted). */
  active = true;
  /**
   * Set when the session was unbound or closed with changes not yet stored: what to store
   * for the user from then on (later changes of the connection are not the user's).
   */
  frozen: SessionData | undefined;
  constructor(readonly userId: string) {}
}

export interface PersistenceOptions {
  heartbeatInterval: number;
  retryInitialDelay: number;
  retryMaxDelay: number;
}

/**
 * The gate's use of a StorageHandler: mqant's semantics (query and merge on Bind, a write on
 * every settings change while bound, a throttled heartbeat), with its gaps fixed:
 * - changes made in the same tick share one write; a verb resolves once its change is stored;
 * - a failed write leaves the live value in place, rejects the verb with a PersistenceError,
 *   and is retried with backoff (and at the next change or heartbeat) until it is stored;
 * - a failed query at Bind is retried before any write, so stored settings are never
 *   overwritten by a session that has not seen them;
 * - heartbeats only for bound sessions (mqant fires them for guests), at most once per
 *   heartbeatInterval, and only when the client showed traffic since the last one;
 * - delete on explicit logout only; a disconnect writes and deletes nothing.
 * Errors never close a connection; each is counted, emitted as `storageError`, and logged
 * once per failure episode with the user id.
 */
export class SessionPersistence extends EventEmitter<{ storageError: [StorageFailure] }> {
  readonly stats: StorageStats = { queries: 0, writes: 0, heartbeats: 0, deletes: 0, errors: 0 };
  /** The last write scheduled per user id (see schedule()). */
  private readonly userChains = new Map<string, Promise<void>>();
  /** Set by close(): no more writes, retries or orphans. */
  private closedForGood = false;
  /** Unstored state of sessions that closed while their store was failing, by user id. */
  private readonly orphans = new Map<string, { session: GateSession; state: PersistState }>();

  constructor(
    private readonly store: StorageHandler,
    private readonly options: PersistenceOptions,
    private readonly logger: () => Logger,
  ) {
    super();
  }

  /** Starts persisting a newly bound session: query + merge, then store. Resolves once stored. */
  bound(session: GateSession): Promise<void> {
    this.stop(session);
    const state = new PersistState(session.userId);
    session.persist = state;
    const orphan = this.orphans.get(session.userId);
    if (orphan) {
      // Unstored changes of this user's earlier connection: live keys still win over them.
      this.orphans.delete(session.userId);
      this.cancelRetry(orphan.state);
      orphan.state.active = false;
      const unstored = orphan.state.frozen?.settings ?? orphan.session.settings;
      session.settings = Object.freeze(Object.assign(copySettings(unstored), session.settings));
    }
    state.version++;
    return this.schedule(session, state);
  }

  /** A settings change of a bound session: resolves once it is stored. Guests: nothing to do. */
  changed(session: GateSession): Promise<void> {
    const state = session.persist;
    if (!state?.active) return Promise.resolve();
    state.version++;
    return this.schedule(session, state);
  }

  /**
   * Stops persisting (unbind). Changes made before the unbind are still stored for `userId`:
   * a write already scheduled is awaited (its callers were promised it), and a failed one
   * keeps being retried in the background. With `deleteStored`, what is stored for `userId`
   * is deleted instead.
   */
  async unbound(session: GateSession, userId: string, deleteStored: boolean): Promise<void> {
    const state = session.persist;
    session.persist = undefined;
    if (state?.active && !deleteStored) {
      if (this.retire(session, state)) await (state.scheduled ?? Promise.resolve()).catch(() => undefined);
    } else if (state) {
      state.active = false;
      this.cancelRetry(state);
    }
    if (!deleteStored) return;
    await state?.chain;
    this.stats.deletes++;
    try {
      await this.store.delete(makeSessionData({ ...session.snapshot(), userId }));
    } catch (err) {
      throw this.fail('delete', userId, session, err, state);
    }
  }

  /** The connection closed: nothing new is written; changes not yet stored keep being retried. */
  closed(session: GateSession): void {
    const state = session.persist;
    if (state?.active) this.retire(session, state);
  }

  /**
   * The session stops being the user's (unbind, close). If it has changes not yet stored,
   * freezes what to store and keeps the state as an orphan until stored; returns true then.
   */
  private retire(session: GateSession, state: PersistState): boolean {
    if (this.closedForGood || (state.stored >= state.version && state.restored && !state.scheduled)) {
      state.active = false;
      this.cancelRetry(state);
      return false;
    }
    state.frozen = makeSessionData({ ...session.snapshot(), userId: state.userId });
    this.orphans.set(state.userId, { session, state });
    return true;
  }

  /**
   * Called from the gate's periodic sweep for every live session: heartbeat when due, i.e.
   * at most once per heartbeatInterval and only if the client sent anything since the last
   * one. A session with unstored changes gets a write instead (its "next chance").
   */
  tick(session: GateSession, now: number): void {
    const state = session.persist;
    if (!state?.active || state.heartbeating) return;
    if (now - state.lastHeartbeat < this.options.heartbeatInterval) return;
    if (session.conn.lastSeen <= state.lastHeartbeat) return;
    state.lastHeartbeat = now;
    if (state.stored < state.version || !state.restored) {
      this.schedule(session, state).catch(() => undefined);
      return;
    }
    state.heartbeating = true;
    this.stats.heartbeats++;
    // Promise.resolve().then: a custom heartbeat that throws synchronously must not escape the sweep.
    Promise.resolve()
      .then(() => this.store.heartbeat(session.snapshot()))
      .then(
      () => this.recovered(session, state),
      (err: unknown) => this.fail('heartbeat', state.userId, session, err, state),
    ).finally(() => {
      state.heartbeating = false;
    });
  }

  /** Gate stop: one last attempt for every session with unstored changes, bounded by the caller. */
  async flush(sessions: Iterable<GateSession>): Promise<void> {
    const pending: Promise<void>[] = [];
    const all: Array<[GateSession, PersistState | undefined]> = [
      ...[...sessions].map((s): [GateSession, PersistState | undefined] => [s, s.persist]),
      ...[...this.orphans.values()].map((o): [GateSession, PersistState] => [o.session, o.state]),
    ];
    for (const [s, state] of all) {
      if (!state?.active || (state.stored >= state.version && state.restored)) continue;
      this.cancelRetry(state);
      pending.push(this.schedule(s, state).catch(() => undefined));
    }
    await Promise.all(pending);
  }

  /** Cancels timers and stops every later write (gate stopped). */
  close(): void {
    this.closedForGood = true;
    for (const o of this.orphans.values()) this.cancelRetry(o.state);
    this.orphans.clear();
  }

  private stop(session: GateSession): void {
    const state = session.persist;
    if (!state) return;
    state.active = false;
    this.cancelRetry(state);
    session.persist = undefined;
  }

  private cancelRetry(state: PersistState): void {
    if (state.retryTimer) clearTimeout(state.retryTimer);
    state.retryTimer = undefined;
  }

  /**
   * One write per tick per session; writes for one user never overlap, from this gate,
   * whichever session (or earlier session) they come from: each waits for the one before,
   * so an older snapshot can never land after a newer one.
   */
  private schedule(session: GateSession, state: PersistState): Promise<void> {
    if (state.scheduled) return state.scheduled;
    const userId = state.userId;
    const previous = this.userChains.get(userId);
    let release!: () => void;
    const slot = new Promise<void>((resolve) => (release = resolve));
    this.userChains.set(userId, slot);
    const run = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => previous)
      .then(() => {
        state.scheduled = undefined;
        const write = this.write(session, state);
        state.chain = write.catch(() => undefined);
        return write;
      })
      .finally(() => {
        release();
        if (this.userChains.get(userId) === slot) this.userChains.delete(userId);
      });
    state.scheduled = run;
    return run;
  }

  private async write(session: GateSession, state: PersistState): Promise<void> {
    if (!state.active || this.closedForGood) return;
    const version = state.version;
    if (state.stored >= version && state.restored) return;
    if (!state.restored) {
      this.stats.queries++;
      let bytes: Uint8Array | null;
      try {
        bytes = await this.store.query(state.userId);
      } catch (err) {
        throw this.retryLater(session, state, this.fail('query', state.userId, session, err, state));
      }
      if (bytes) {
        try {
          const stored = decodeSession(bytes).settings;
          if (state.frozen) {
            state.frozen = makeSessionData({ ...state.frozen, settings: Object.freeze(Object.assign(copySettings(stored), state.frozen.settings)) });
          } else {
            session.settings = Object.freeze(Object.assign(copySettings(stored), session.settings));
          }
        } catch (err) {
          // Unreadable bytes (not a SessionImp): keep the live settings, overwrite them.
          this.logger().warn({ userId: state.userId, error: String(err) }, 'stored session could not be decoded; replacing it');
        }
      }
      state.restored = true;
      if (!state.active) return;
    }
    this.stats.writes++;
    try {
      await this.store.storage(state.frozen ?? session.snapshot());
    } catch (err) {
      throw this.retryLater(session, state, this.fail('storage', state.userId, session, err, state));
    }
    if (version > state.stored) state.stored = version;
    state.lastHeartbeat = Date.now();
    this.recovered(session, state);
  }

  private retryLater(session: GateSession, state: PersistState, error: Error): Error {
    if (state.active && !state.retryTimer && !this.closedForGood) {
      state.retryDelay = Math.min(
        this.options.retryMaxDelay,
        state.retryDelay ? state.retryDelay * 2 : this.options.retryInitialDelay,
      );
      state.retryTimer = setTimeout(() => {
        state.retryTimer = undefined;
        this.schedule(session, state).catch(() => undefined);
      }, state.retryDelay);
      state.retryTimer.unref();
    }
    return error;
  }

  private recovered(session: GateSession, state: PersistState): void {
    state.retryDelay = 0;
    if (state.stored >= state.version && this.orphans.get(state.userId)?.state === state) {
      this.orphans.delete(state.userId);
      state.active = false;
    }
    if (!state.failing) return;
    state.failing = false;
    this.logger().info({ userId: state.userId, sessionId: session.sessionId }, 'session store recovered; session persisted');
  }

  private fail(
    operation: StorageFailure['operation'],
    userId: string,
    session: GateSession,
    err: unknown,
    state: PersistState | undefined,
  ): Error {
    const error = err instanceof Error ? err : new Error(String(err));
    this.stats.errors++;
    const firstOfEpisode = !state || !state.failing;
    if (state) state.failing = true;
    if (firstOfEpisode) {
      this.logger().warn({ userId, sessionId: session.sessionId, operation, error: error.message }, 'session store failed');
    }
    this.emit('storageError', { operation, userId, sessionId: session.sessionId, error });
    return error;
  }
}
