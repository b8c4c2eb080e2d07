// About 470 lines: the effects of the persistence state machine (store calls, timers, retries,
// per-user write chains, orphans) on one entry type; the transitions are in persistence/state.ts.
import { EventEmitter } from 'node:events';
import { decodeSession, makeSessionData, type Logger, type SessionData } from '@mqgate/rpc';
import type { StorageHandler } from '@mqgate/storage';
import { initialState, next, type Effect, type PersistEvent, type PersistState, type StoreOperation } from './state';
import type { GateSession } from '../session/session';
import { limitStored, type SessionLimits } from '../session/limits';
import { mergeUnderLive } from '../session/settings';

/** What a storage failure event carries. */
export interface StorageFailure {
  operation: StoreOperation;
  userId: string;
  sessionId: string;
  error: Error;
}

/**
 * A session whose last change a gate stop could not store before its deadline (see
 * {@link SessionPersistence.settle}): what the error log of the stop names.
 */
export interface Unstored {
  userId: string;
  sessionId: string;
  /** What was lost: `settings change`, `bind` (stored settings not merged, session not stored), or `closed connection's changes`. */
  lost: 'settings change' | 'bind' | "closed connection's changes";
  /** Number of setting keys in the snapshot that was not stored. */
  keys: number;
}

/** Error lines a stop writes, one per unstored user, before a single line with the count of the rest. */
export const UNSTORED_LOG_CAP = 100;

/**
 * Logs at error what a stop could not store: one line per user (fields userId, sessionId,
 * lost, keys) up to {@link UNSTORED_LOG_CAP}, then one line with the count of the rest.
 */
export function logUnstored(logger: Logger, unstored: readonly Unstored[], cap = UNSTORED_LOG_CAP): void {
  for (const u of unstored.slice(0, cap)) logger.error({ ...u }, 'gate stopped before the session store took this change; it is lost');
  if (unstored.length > cap) {
    logger.error({ unstored: unstored.length, notListed: unstored.length - cap }, 'gate stopped with more unstored changes than listed');
  }
}

/** Store calls made and failed since start. */
export interface StorageStats {
  queries: number;
  writes: number;
  heartbeats: number;
  deletes: number;
  errors: number;
}

/**
 * Time as persistence sees it. The default is the process's own (Date.now, setTimeout with
 * unref'd timers, setImmediate); tests pass a fake one to drive time without sleeping.
 */
export interface PersistenceClock {
  /** ms since the epoch. */
  now(): number;
  /** Runs `fn` after `ms` (a retry); the timer must not keep the process alive. Returns a handle for clearTimeout. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Runs `fn` once the current tick's callbacks are done (the changes of one tick share a write). */
  setImmediate(fn: () => void): void;
}

const systemClock: PersistenceClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  setImmediate: (fn) => void setImmediate(fn),
};

export interface PersistenceOptions {
  /** ms, the least time between two heartbeats of a session. */
  heartbeatInterval: number;
  /** ms before the first retry of a failed write; doubles on every failure. */
  retryInitialDelay: number;
  /** ms, the longest wait between retries. */
  retryMaxDelay: number;
  /** Default: the process's clock and timers. */
  clock?: PersistenceClock;
  /** What is kept of a stored session at Bind (see SessionLimits). Default: no limits. */
  limits?: SessionLimits;
  /** ms a stored record can resume its session for (gate option resumeWindow); 0: no resume data stored. Default 0. */
  resumeWindow?: number;
}

/** One session's persistence: its state (see persistence/state.ts) and the handles of its effects. */
interface Entry {
  readonly userId: string;
  readonly session: GateSession;
  state: PersistState;
  /** What to store once orphaned: the session's snapshot when it stopped being the user's. */
  frozen: SessionData | undefined;
  /** The write scheduled for this tick, shared by every change made in it. */
  scheduled: Promise<void> | undefined;
  /** The write in flight, or the last one (never rejects). */
  running: Promise<void>;
  /** The write in flight, or the last one, as it settled (rejects when it failed). */
  current: Promise<void> | undefined;
  /** The retry timer while `retrying`. */
  timer: unknown;
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
 *
 * The decisions are the state machine of persistence/state.ts ({@link next}); this class runs
 * its effects and keeps each bound session's state beside the session (not on it).
 */
export class SessionPersistence extends EventEmitter<{ storageError: [StorageFailure] }> {
  readonly stats: StorageStats = { queries: 0, writes: 0, heartbeats: 0, deletes: 0, errors: 0 };
  /** The persistence of each bound session, while it is the user's. */
  private readonly entries = new WeakMap<GateSession, Entry>();
  /** Every entry not retired (bound sessions and orphans): what close() stops. */
  private readonly live = new Set<Entry>();
  /** Sessions that stopped being the user's with changes not yet stored, by user id. */
  private readonly orphans = new Map<string, Entry>();
  /** The last write scheduled per user id (see schedule()). */
  private readonly userChains = new Map<string, Promise<void>>();
  /** Set by close(): no more binds are persisted (every entry was dropped). */
  private closedForGood = false;
  private readonly clock: PersistenceClock;

  constructor(
    private readonly store: StorageHandler,
    private readonly options: PersistenceOptions,
    private readonly logger: () => Logger,
  ) {
    super();
    this.clock = options.clock ?? systemClock;
  }

  /**
   * Starts persisting a newly bound session: query and merge (live keys win), then store.
   * Unstored changes of the user's earlier connection on this gate (an orphan) are merged in
   * first, live keys winning over them too. Resolves once stored; rejects with the store's
   * error when the query or the write failed (both are retried).
   */
  bound(session: GateSession): Promise<void> {
    this.stop(session);
    if (this.closedForGood) return Promise.resolve();
    const orphan = this.orphans.get(session.userId);
    if (orphan) {
      this.apply(orphan, { type: 'drop' });
      session.settings = mergeUnderLive(orphan.frozen?.settings ?? orphan.session.settings, session.settings);
    }
    return this.track(session, false);
  }

  /**
   * Starts persisting a session resumed from another gate or from the store: a
   * resume is not a bind, so there is no query; the session is stored as it is (with its
   * new resume token). Resolves once stored.
   */
  adopted(session: GateSession): Promise<void> {
    this.stop(session);
    if (this.closedForGood) return Promise.resolve();
    return this.track(session, true);
  }

  /** Starts an entry for a bound session; `restored`: its stored settings need no query. Resolves once stored. */
  private track(session: GateSession, restored: boolean): Promise<void> {
    const { state, effects } = initialState(this.clock.now());
    const entry: Entry = {
      userId: session.userId,
      session,
      state: restored ? { ...state, restored: true } : state,
      frozen: undefined,
      scheduled: undefined,
      running: Promise.resolve(),
      current: undefined,
      timer: undefined,
    };
    this.entries.set(session, entry);
    this.live.add(entry);
    this.run(entry, effects);
    return entry.scheduled ?? Promise.resolve();
  }

  /**
   * A settings change of a bound session: resolves once it is stored. Guests: nothing to do.
   * While the store is failing and a write is in flight, rejects as soon as that write fails
   * (the change is retried all the same): the caller hears within one store attempt, not
   * after the one in flight and then its own.
   */
  changed(session: GateSession): Promise<void> {
    const entry = this.entries.get(session);
    if (!entry) return Promise.resolve();
    const inFlight = entry.state.failing && entry.state.phase.kind === 'writing' ? entry.current : undefined;
    this.apply(entry, { type: 'change' });
    const own = entry.scheduled ?? Promise.resolve();
    return inFlight ? inFlight.then(() => own) : own;
  }

  /**
   * Stops persisting (unbind). Changes made before the unbind are still stored for `userId`:
   * a write already scheduled is awaited (its callers were promised it), and a failed one
   * keeps being retried in the background. With `deleteStored`, what is stored for `userId`
   * is deleted instead, once the write in flight (if any) is done.
   * @throws the store's error when the delete failed (counted and emitted as well).
   */
  async unbound(session: GateSession, userId: string, deleteStored: boolean): Promise<void> {
    const entry = this.entries.get(session);
    this.entries.delete(session);
    if (entry && !deleteStored) {
      if (this.retire(entry)) await (entry.scheduled ?? Promise.resolve()).catch(() => undefined);
    } else if (entry) {
      this.apply(entry, { type: 'drop' });
    }
    if (!deleteStored) return;
    await entry?.running;
    this.stats.deletes++;
    try {
      await this.store.delete(makeSessionData({ ...session.snapshot(), userId }));
    } catch (err) {
      throw this.fail('delete', userId, session, err, entry);
    }
  }

  /** The connection closed: nothing new is written; changes not yet stored keep being retried. */
  closed(session: GateSession): void {
    const entry = this.entries.get(session);
    this.entries.delete(session);
    if (entry) this.retire(entry);
  }

  /**
   * Called from the gate's periodic sweep for every live session (`now` in ms): heartbeat
   * when due, i.e. at most once per heartbeatInterval and only if the client sent anything
   * since the last one. A session with unstored changes gets a write instead (its "next chance").
   */
  tick(session: GateSession, now: number): void {
    const entry = this.entries.get(session);
    if (entry) this.apply(entry, { type: 'tick', now, lastSeen: session.conn.lastSeen });
  }

  /**
   * Gate stop: keeps storing every session and orphan with unstored changes, as their
   * verbs promised, until all are stored or `deadline` (ms since the epoch) passes: an
   * attempt at once for each (a write in flight counts), then one every
   * min(retryInitialDelay, 250) ms for those still failing. Never rejects. Resolves with
   * those not stored by the deadline (a write still in flight then counts as not stored).
   */
  async settle(deadline: number): Promise<Unstored[]> {
    const pause = Math.min(this.options.retryInitialDelay, 250);
    for (let round = 0; ; round++) {
      const pending = [...this.live].filter(isUnstored);
      const left = deadline - this.clock.now();
      if (pending.length === 0 || left <= 0) return pending.map(describeUnstored);
      if (round > 0) await this.within(undefined, Math.min(pause, left));
      await this.within(Promise.all(pending.map((e) => this.flushOne(e))), Math.max(0, deadline - this.clock.now()));
    }
  }

  /**
   * Right after {@link settle} (before {@link close}): its unstored sessions split into those
   * with a write in flight, sent to the store and not answered yet (a stalled store may still
   * take it: `writing` resolves, once the store answered them all, with those it failed), and
   * the others, whose change waits for an attempt that close() cancels: `queued`, lost.
   */
  unacknowledged(): { queued: Unstored[]; inFlight: number; writing: Promise<Unstored[]> } {
    const queued: Unstored[] = [];
    const writing: Array<Promise<Unstored | undefined>> = [];
    for (const e of [...this.live].filter(isUnstored)) {
      const phase = e.state.phase;
      const described = describeUnstored(e);
      if (phase.kind === 'writing' && !phase.again && e.current)
        writing.push(
          e.current.then(
            () => undefined,
            () => described,
          ),
        );
      else queued.push(described);
    }
    return {
      queued,
      inFlight: writing.length,
      writing: Promise.all(writing).then((all) => all.filter((u): u is Unstored => u !== undefined)),
    };
  }

  /** Resolves when `work` does (never rejects: flushOne does not), or after `ms`, whichever is first; the timer is cleared. */
  private within(work: Promise<unknown> | undefined, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(resolve, ms);
      void work?.then(() => {
        this.clock.clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Cancels timers and stops every later write, retry and orphan (gate stopped). */
  close(): void {
    this.closedForGood = true;
    for (const entry of [...this.live]) this.apply(entry, { type: 'drop' });
  }

  /** The persistence state of a bound session (undefined for a guest): for tests and diagnostics. */
  stateOf(session: GateSession): PersistState | undefined {
    return this.entries.get(session)?.state;
  }

  private async flushOne(entry: Entry): Promise<void> {
    if (entry.state.phase.kind === 'writing' && !entry.state.phase.again) await entry.running;
    this.apply(entry, { type: 'flush' });
    await (entry.scheduled ?? Promise.resolve()).catch(() => undefined);
  }

  /** A rebind of a session still persisted: its old state stops where it is. */
  private stop(session: GateSession): void {
    const entry = this.entries.get(session);
    this.entries.delete(session);
    if (entry) this.apply(entry, { type: 'drop' });
  }

  /** The session stops being the user's; returns true when it was kept as an orphan (changes not yet stored). */
  private retire(entry: Entry): boolean {
    this.apply(entry, { type: 'retire' });
    return entry.state.phase.kind !== 'retired';
  }

  /** Runs one transition of the state machine and its effects; returns the effects. */
  private apply(entry: Entry, event: PersistEvent): Effect[] {
    const { state, effects } = next(entry.state, event, this.options);
    entry.state = state;
    if (state.phase.kind === 'retired') this.live.delete(entry);
    this.run(entry, effects);
    return effects;
  }

  private run(entry: Entry, effects: readonly Effect[]): void {
    for (const effect of effects) {
      switch (effect) {
        case 'write':
          this.schedule(entry);
          break;
        case 'arm':
          entry.timer = this.clock.setTimeout(() => {
            entry.timer = undefined;
            this.apply(entry, { type: 'retryDue' });
          }, entry.state.backoff);
          break;
        case 'disarm':
          if (entry.timer !== undefined) this.clock.clearTimeout(entry.timer);
          entry.timer = undefined;
          break;
        case 'heartbeat':
          this.heartbeat(entry);
          break;
        case 'orphan':
          entry.frozen = makeSessionData({ ...entry.session.record(this.options.resumeWindow ?? 0), userId: entry.userId });
          this.orphans.set(entry.userId, entry);
          break;
        case 'release':
          if (this.orphans.get(entry.userId) === entry) this.orphans.delete(entry.userId);
          break;
        case 'recovered':
          this.logger().info({ userId: entry.userId, sessionId: entry.session.sessionId }, 'session store recovered; session persisted');
          break;
        case 'warn':
          break; // logged by fail(), which knows the operation and the error
      }
    }
  }

  /**
   * One write per tick per session; writes for one user never overlap, from this gate,
   * whichever session (or earlier session) they come from: each waits for the one before,
   * so an older snapshot can never land after a newer one.
   */
  private schedule(entry: Entry): void {
    if (entry.scheduled) return;
    const userId = entry.userId;
    const previous = this.userChains.get(userId);
    let release!: () => void;
    const slot = new Promise<void>((resolve) => (release = resolve));
    this.userChains.set(userId, slot);
    const run = new Promise<void>((resolve) => this.clock.setImmediate(resolve))
      .then(() => previous)
      .then(() => {
        entry.scheduled = undefined;
        const write = this.write(entry);
        entry.current = write;
        entry.running = write.catch(() => undefined);
        return write;
      })
      .finally(() => {
        release();
        if (this.userChains.get(userId) === slot) this.userChains.delete(userId);
      });
    // Nobody awaits the writes of ticks and retries: their failures are reported by fail().
    run.catch(() => undefined);
    entry.scheduled = run;
  }

  /** The scheduled write: query and merge first while not restored, then store. */
  private async write(entry: Entry): Promise<void> {
    this.apply(entry, { type: 'start' });
    if (entry.state.phase.kind !== 'writing') return;
    if (!entry.state.restored) {
      this.stats.queries++;
      let bytes: Uint8Array | null;
      try {
        bytes = await this.store.query(entry.userId);
      } catch (err) {
        throw this.fail('query', entry.userId, entry.session, err, entry);
      }
      if (bytes) this.restore(entry, bytes);
      this.apply(entry, { type: 'restored' });
      if (entry.state.phase.kind !== 'writing') return;
    }
    this.stats.writes++;
    try {
      await this.store.storage(entry.frozen ?? entry.session.record(this.options.resumeWindow ?? 0));
    } catch (err) {
      throw this.fail('storage', entry.userId, entry.session, err, entry);
    }
    this.apply(entry, { type: 'written', now: this.clock.now() });
  }

  /** Merges the stored settings under what is to be stored (the orphan's frozen snapshot, else the live session). */
  private restore(entry: Entry, bytes: Uint8Array): void {
    let stored: Readonly<Record<string, string>>;
    try {
      stored = decodeSession(bytes).settings;
    } catch (err) {
      // Unreadable bytes (not a SessionImp): keep the live settings, overwrite them.
      this.logger().warn({ userId: entry.userId, error: String(err) }, 'stored session could not be decoded; replacing it');
      return;
    }
    const live = entry.frozen ? entry.frozen.settings : entry.session.settings;
    if (this.options.limits) {
      const { settings, dropped } = limitStored(stored, live, this.options.limits);
      if (dropped.length > 0) {
        this.logger().warn(
          { userId: entry.userId, dropped: dropped.length, keys: dropped.slice(0, 5).map((k) => k.slice(0, 40)) },
          'stored settings past the session limits were dropped',
        );
      }
      stored = settings;
    }
    if (entry.frozen) entry.frozen = makeSessionData({ ...entry.frozen, settings: mergeUnderLive(stored, live) });
    else entry.session.settings = mergeUnderLive(stored, live);
  }

  private heartbeat(entry: Entry): void {
    this.stats.heartbeats++;
    // Promise.resolve().then: a custom heartbeat that throws synchronously must not escape the sweep.
    Promise.resolve()
      .then(() => this.store.heartbeat(entry.session.record(this.options.resumeWindow ?? 0)))
      .then(
        () => void this.apply(entry, { type: 'beaten' }),
        (err: unknown) => void this.fail('heartbeat', entry.userId, entry.session, err, entry),
      );
  }

  /** Counts, reports (event; a log at the first failure of an episode) and returns the failure as an Error. */
  private fail(operation: StoreOperation, userId: string, session: GateSession, err: unknown, entry: Entry | undefined): Error {
    const error = err instanceof Error ? err : new Error(String(err));
    this.stats.errors++;
    const firstOfEpisode = entry ? this.apply(entry, { type: 'failed', op: operation }).includes('warn') : true;
    if (firstOfEpisode) {
      this.logger().warn({ userId, sessionId: session.sessionId, traceId: session.traceId, operation, error: error.message }, 'session store failed');
    }
    this.emit('storageError', { operation, userId, sessionId: session.sessionId, error });
    return error;
  }
}

/** Changes not stored yet: a write scheduled, in flight, or waiting for its retry. */
function isUnstored(entry: Entry): boolean {
  const kind = entry.state.phase.kind;
  return kind === 'dirty' || kind === 'writing' || kind === 'retrying';
}

function describeUnstored(entry: Entry): Unstored {
  const data = entry.frozen ?? entry.session;
  const lost = entry.state.orphaned ? "closed connection's changes" : entry.state.restored ? 'settings change' : 'bind';
  return { userId: entry.userId, sessionId: entry.session.sessionId, lost, keys: Object.keys(data.settings).length };
}
