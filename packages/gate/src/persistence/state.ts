/**
 * The persistence of one bound session as an explicit state machine. {@link next} is pure:
 * it maps a state and an event to the next state and the effects to run, and
 * SessionPersistence runs them (store calls, timers, logs). Every decision about when to
 * write, retry, heartbeat or stop is made here, and only here.
 */

/** A StorageHandler method. */
export type StoreOperation = 'storage' | 'delete' | 'query' | 'heartbeat';

/**
 * Where the stored copy of one session stands:
 * - `clean`: everything is stored (the stored settings merged in first); heartbeats when due.
 * - `dirty`: changes not stored yet; a write is scheduled for the end of this tick, shared
 *   by every change made in it.
 * - `writing`: a write is in flight (a query and merge first, while not `restored`);
 *   `again` when changes were made since it began: the next write is scheduled behind it.
 * - `retrying`: the last attempt failed; a retry timer of `backoff` ms runs.
 * - `retired`: nothing more is written for it (stored when it stopped, dropped, gate closed).
 */
export type Phase =
  | { readonly kind: 'clean' }
  | { readonly kind: 'dirty' }
  | { readonly kind: 'writing'; readonly again: boolean }
  | { readonly kind: 'retrying' }
  | { readonly kind: 'retired' };

/** The persistence state of one session (immutable: {@link next} returns a new one). */
export interface PersistState {
  readonly phase: Phase;
  /**
   * The stored settings have been queried and merged since bind. Until then every attempt
   * queries first, so stored settings are never overwritten by a session that has not seen them.
   */
  readonly restored: boolean;
  /**
   * The session stopped being the user's (unbind, connection closed) with changes not yet
   * stored: its snapshot at that moment is written until stored (later changes of the
   * connection are not the user's), then it retires. Merged into the user's next bind.
   */
  readonly orphaned: boolean;
  /** ms of the last retry delay; 0 after any success (the next failure waits the initial delay). */
  readonly backoff: number;
  /** In a failure episode: logged once, at its first failure, and once at its recovery. */
  readonly failing: boolean;
  /** ms timestamp of the last heartbeat or write; the next heartbeat is due heartbeatInterval later. */
  readonly lastHeartbeat: number;
  /** A heartbeat is in flight (no second one meanwhile). */
  readonly heartbeating: boolean;
}

/**
 * What happens to a session's persistence:
 * - `change`: a settings change of the bound session;
 * - `start`: the scheduled write begins (it stores the session as it is then);
 * - `restored`: the query answered and its settings were merged;
 * - `written`: the store took the write, at `now` (ms);
 * - `failed`: a store call failed (`query` and `storage` are the write's);
 * - `retryDue`: the retry timer fired;
 * - `tick`: the gate's periodic sweep, at `now`, the client last seen at `lastSeen` (ms);
 * - `beaten`: a heartbeat succeeded;
 * - `retire`: unbind without delete, or the connection closed: no longer the user's;
 * - `drop`: stop without storing anything more (unbind with delete, a rebind, the orphan
 *   merged into a new bind, the gate closed);
 * - `flush`: the gate is stopping: an attempt now (repeated by SessionPersistence.settle until stored or its deadline).
 */
export type PersistEvent =
  | { readonly type: 'change' }
  | { readonly type: 'start' }
  | { readonly type: 'restored' }
  | { readonly type: 'written'; readonly now: number }
  | { readonly type: 'failed'; readonly op: StoreOperation }
  | { readonly type: 'retryDue' }
  | { readonly type: 'tick'; readonly now: number; readonly lastSeen: number }
  | { readonly type: 'beaten' }
  | { readonly type: 'retire' }
  | { readonly type: 'drop' }
  | { readonly type: 'flush' };

/**
 * What SessionPersistence does after a transition:
 * `write` schedules a write for the end of this tick (or joins the one scheduled); `arm`
 * starts the retry timer (`backoff` ms); `disarm` cancels it; `heartbeat` calls the store's
 * heartbeat; `orphan` freezes the session's snapshot and keeps it by user id; `release`
 * forgets that orphan; `warn` logs the first failure of an episode; `recovered` logs its end.
 */
export type Effect = 'write' | 'arm' | 'disarm' | 'heartbeat' | 'orphan' | 'release' | 'warn' | 'recovered';

/** The timing {@link next} needs, in ms. */
export interface PersistPolicy {
  /** Least time between two heartbeats of a session. */
  heartbeatInterval: number;
  /** Retry delay after the first failure of an episode. */
  retryInitialDelay: number;
  /** Longest retry delay (it doubles up to this). */
  retryMaxDelay: number;
}

/** A state and the effects that take it there. */
export interface Transition {
  state: PersistState;
  effects: Effect[];
}

/** The phases, one value each (states compare equal with toEqual). */
export const CLEAN: Phase = { kind: 'clean' };
export const DIRTY: Phase = { kind: 'dirty' };
export const WRITING: Phase = { kind: 'writing', again: false };
export const WRITING_AGAIN: Phase = { kind: 'writing', again: true };
export const RETRYING: Phase = { kind: 'retrying' };
export const RETIRED: Phase = { kind: 'retired' };

/** A newly bound session at `now` (ms): not restored, its first write (query first) scheduled. */
export function initialState(now: number): Transition {
  return {
    state: { phase: DIRTY, restored: false, orphaned: false, backoff: 0, failing: false, lastHeartbeat: now, heartbeating: false },
    effects: ['write'],
  };
}

function to(state: PersistState, change: Partial<PersistState>, ...effects: Array<Effect | false>): Transition {
  return { state: { ...state, ...change }, effects: effects.filter((e): e is Effect => e !== false) };
}

/** The retry delay after one more failure: the initial delay, then doubling up to the max. */
function nextBackoff(backoff: number, policy: PersistPolicy): number {
  return Math.min(policy.retryMaxDelay, backoff ? backoff * 2 : policy.retryInitialDelay);
}

/**
 * The one transition function. In short (phase: event → phase [effects]; a `retired` state
 * and an orphan's live-session events change nothing):
 * - clean: change → dirty [write]; tick, due and after traffic → clean [heartbeat];
 *   retire → retired; drop → retired.
 * - dirty: change → dirty [write, joining it]; start → writing; retire → orphaned (the
 *   scheduled write stores the frozen snapshot); drop → retired.
 * - writing: change → writing again [write]; written → clean, or dirty when again, or
 *   retired [release] when orphaned; failed → retrying [arm] (backoff doubled up to the
 *   max), or dirty when again; retire → orphaned; drop → retired.
 * - retrying: retryDue → dirty [write]; change, tick (due), flush → dirty [disarm, write];
 *   retire → orphaned (still retried); drop → retired [disarm].
 * Any failure sets `failing` ([warn] the first time); a write or heartbeat that succeeds
 * clears it ([recovered]) and resets the backoff.
 */
export function next(s: PersistState, e: PersistEvent, policy: PersistPolicy): Transition {
  const p = s.phase;
  const live = p.kind !== 'retired';
  switch (e.type) {
    case 'change':
      if (!live || s.orphaned) return to(s, {});
      if (p.kind === 'writing') return to(s, { phase: WRITING_AGAIN }, 'write');
      return to(s, { phase: DIRTY }, p.kind === 'retrying' && 'disarm', 'write');
    case 'start':
      return to(s, p.kind === 'dirty' ? { phase: WRITING } : {});
    case 'restored':
      return to(s, { restored: true });
    case 'written': {
      const recovered = { backoff: 0, failing: false, lastHeartbeat: e.now };
      if (p.kind !== 'writing') return to(s, recovered, s.failing && 'recovered');
      if (p.again) return to(s, { ...recovered, phase: DIRTY }, s.failing && 'recovered');
      if (s.orphaned) return to(s, { ...recovered, phase: RETIRED }, 'release', s.failing && 'recovered');
      return to(s, { ...recovered, phase: CLEAN }, s.failing && 'recovered');
    }
    case 'failed': {
      const failing = { failing: true };
      if (e.op === 'heartbeat') return to(s, { ...failing, heartbeating: false }, !s.failing && 'warn');
      if (e.op === 'delete' || p.kind !== 'writing') return to(s, failing, !s.failing && 'warn');
      // The scheduled write behind this one is the next attempt.
      if (p.again) return to(s, { ...failing, phase: DIRTY }, !s.failing && 'warn');
      return to(s, { ...failing, phase: RETRYING, backoff: nextBackoff(s.backoff, policy) }, !s.failing && 'warn', 'arm');
    }
    case 'retryDue':
      return p.kind === 'retrying' ? to(s, { phase: DIRTY }, 'write') : to(s, {});
    case 'tick': {
      if (!live || s.orphaned || s.heartbeating) return to(s, {});
      if (e.now - s.lastHeartbeat < policy.heartbeatInterval || e.lastSeen <= s.lastHeartbeat) return to(s, {});
      if (p.kind === 'clean') return to(s, { lastHeartbeat: e.now, heartbeating: true }, 'heartbeat');
      // Unstored changes get a write instead, their "next chance"; one under way is that chance.
      if (p.kind === 'retrying') return to(s, { lastHeartbeat: e.now, phase: DIRTY }, 'disarm', 'write');
      return to(s, { lastHeartbeat: e.now });
    }
    case 'beaten':
      return to(s, { heartbeating: false, backoff: 0, failing: false }, s.failing && 'recovered');
    case 'retire':
      if (!live || s.orphaned) return to(s, {});
      if (p.kind === 'clean') return to(s, { phase: RETIRED });
      return to(s, { orphaned: true }, 'orphan');
    case 'drop':
      if (!live) return to(s, {});
      return to(s, { phase: RETIRED }, p.kind === 'retrying' && 'disarm', s.orphaned && 'release');
    case 'flush':
      return p.kind === 'retrying' ? to(s, { phase: DIRTY }, 'disarm', 'write') : to(s, {});
  }
}
