/**
 * The persistence state machine on its own (persistence/state.ts): every transition of the
 * pure `next(state, event, policy)`, phase by phase, with the effects it asks for.
 */
import {
  CLEAN,
  DIRTY,
  RETIRED,
  RETRYING,
  WRITING,
  WRITING_AGAIN as AGAIN,
  initialState,
  next,
  type Effect,
  type PersistEvent,
  type PersistState,
  type Phase,
} from '../src/persistence/state';

const policy = { heartbeatInterval: 1000, retryInitialDelay: 50, retryMaxDelay: 300 };
const T0 = 10_000;

/** A restored state in `phase`, last heartbeat at T0, with `extra` over it. */
function st(phase: Phase, extra: Partial<PersistState> = {}): PersistState {
  return { ...initialState(T0).state, restored: true, phase, ...extra };
}

function step(s: PersistState, e: PersistEvent): [PersistState, Effect[]] {
  const t = next(s, e, policy);
  return [t.state, t.effects];
}

const ALL_EVENTS: PersistEvent[] = [
  { type: 'change' },
  { type: 'start' },
  { type: 'written', now: T0 + 1 },
  { type: 'failed', op: 'storage' },
  { type: 'retryDue' },
  { type: 'tick', now: T0 + 5000, lastSeen: T0 + 4000 },
  { type: 'retire' },
  { type: 'drop' },
  { type: 'flush' },
];

test('next is pure: the state given is never changed', () => {
  for (const phase of [CLEAN, DIRTY, WRITING, AGAIN, RETRYING, RETIRED]) {
    for (const e of ALL_EVENTS) {
      const s = Object.freeze(st(phase));
      expect(() => next(s, e, policy)).not.toThrow();
      expect(s).toEqual(st(phase));
    }
  }
});

test('bind: dirty, not restored, the first write scheduled', () => {
  const { state, effects } = initialState(T0);
  expect(state).toEqual({ phase: DIRTY, restored: false, orphaned: false, backoff: 0, failing: false, lastHeartbeat: T0, heartbeating: false });
  expect(effects).toEqual(['write']);
});

describe('change', () => {
  test('clean → dirty [write]', () => expect(step(st(CLEAN), { type: 'change' })).toEqual([st(DIRTY), ['write']]));
  test('dirty → dirty [write] (joins the scheduled write)', () => expect(step(st(DIRTY), { type: 'change' })).toEqual([st(DIRTY), ['write']]));
  test('writing → writing again [write] (the next write, behind the one in flight)', () => {
    expect(step(st(WRITING), { type: 'change' })).toEqual([st(AGAIN), ['write']]);
    expect(step(st(AGAIN), { type: 'change' })).toEqual([st(AGAIN), ['write']]);
  });
  test('retrying → dirty [disarm, write] (the change is the next chance)', () =>
    expect(step(st(RETRYING, { backoff: 100 }), { type: 'change' })).toEqual([st(DIRTY, { backoff: 100 }), ['disarm', 'write']]));
  test('retired, or orphaned: nothing', () => {
    expect(step(st(RETIRED), { type: 'change' })).toEqual([st(RETIRED), []]);
    expect(step(st(RETRYING, { orphaned: true }), { type: 'change' })).toEqual([st(RETRYING, { orphaned: true }), []]);
  });
});

describe('start, restored', () => {
  test('dirty → writing', () => expect(step(st(DIRTY), { type: 'start' })).toEqual([st(WRITING), []]));
  test('retired: stays retired (the write does nothing)', () => expect(step(st(RETIRED), { type: 'start' })).toEqual([st(RETIRED), []]));
  test('restored sets restored, nothing else', () => expect(step(st(WRITING, { restored: false }), { type: 'restored' })).toEqual([st(WRITING), []]));
});

describe('written (at now)', () => {
  const w = { type: 'written', now: T0 + 7 } as const;
  test('writing → clean, backoff reset, heartbeat clock restarted', () =>
    expect(step(st(WRITING, { backoff: 200 }), w)).toEqual([st(CLEAN, { lastHeartbeat: T0 + 7 }), []]));
  test('writing again → dirty (the scheduled write follows)', () => expect(step(st(AGAIN), w)).toEqual([st(DIRTY, { lastHeartbeat: T0 + 7 }), []]));
  test('orphaned writing → retired [release]', () =>
    expect(step(st(WRITING, { orphaned: true }), w)).toEqual([st(RETIRED, { orphaned: true, lastHeartbeat: T0 + 7 }), ['release']]));
  test('orphaned writing again → dirty (its frozen snapshot is written once more)', () =>
    expect(step(st(AGAIN, { orphaned: true }), w)).toEqual([st(DIRTY, { orphaned: true, lastHeartbeat: T0 + 7 }), []]));
  test('the end of a failure episode [recovered]', () =>
    expect(step(st(WRITING, { failing: true, backoff: 50 }), w)).toEqual([st(CLEAN, { lastHeartbeat: T0 + 7 }), ['recovered']]));
  test('retired meanwhile: stays retired', () =>
    expect(step(st(RETIRED, { failing: true }), w)).toEqual([st(RETIRED, { lastHeartbeat: T0 + 7 }), ['recovered']]));
});

describe('failed', () => {
  test('writing → retrying [warn, arm], backoff starts at retryInitialDelay', () =>
    expect(step(st(WRITING), { type: 'failed', op: 'storage' })).toEqual([st(RETRYING, { failing: true, backoff: 50 }), ['warn', 'arm']]));
  test('a failed query is a failed write: retrying before any storage', () =>
    expect(step(st(WRITING, { restored: false }), { type: 'failed', op: 'query' })).toEqual([
      st(RETRYING, { restored: false, failing: true, backoff: 50 }),
      ['warn', 'arm'],
    ]));
  test('backoff doubles on every failure up to retryMaxDelay; only the first of an episode warns', () => {
    let s = st(WRITING);
    const delays: number[] = [];
    const effects: Effect[][] = [];
    for (let i = 0; i < 5; i++) {
      const [failed, fx] = step(s, { type: 'failed', op: 'storage' });
      delays.push(failed.backoff);
      effects.push(fx);
      [s] = step(step(failed, { type: 'retryDue' })[0], { type: 'start' });
    }
    expect(delays).toEqual([50, 100, 200, 300, 300]);
    expect(effects).toEqual([['warn', 'arm'], ['arm'], ['arm'], ['arm'], ['arm']]);
  });
  test('writing again → dirty [warn] (the scheduled write is the retry, no timer)', () =>
    expect(step(st(AGAIN), { type: 'failed', op: 'storage' })).toEqual([st(DIRTY, { failing: true }), ['warn']]));
  test('heartbeat: failing, heartbeat over, no retry', () =>
    expect(step(st(CLEAN, { heartbeating: true }), { type: 'failed', op: 'heartbeat' })).toEqual([st(CLEAN, { failing: true }), ['warn']]));
  test('delete (retired): failing only', () => {
    expect(step(st(RETIRED), { type: 'failed', op: 'delete' })).toEqual([st(RETIRED, { failing: true }), ['warn']]);
    expect(step(st(RETIRED, { failing: true }), { type: 'failed', op: 'delete' })).toEqual([st(RETIRED, { failing: true }), []]);
  });
  test('retired while writing: no timer', () =>
    expect(step(st(RETIRED), { type: 'failed', op: 'storage' })).toEqual([st(RETIRED, { failing: true }), ['warn']]));
});

describe('retryDue', () => {
  test('retrying → dirty [write]', () =>
    expect(step(st(RETRYING, { backoff: 100 }), { type: 'retryDue' })).toEqual([st(DIRTY, { backoff: 100 }), ['write']]));
  test('an orphan is retried too', () =>
    expect(step(st(RETRYING, { orphaned: true }), { type: 'retryDue' })).toEqual([st(DIRTY, { orphaned: true }), ['write']]));
  test('any other phase: nothing', () => {
    for (const phase of [CLEAN, DIRTY, WRITING, RETIRED]) expect(step(st(phase), { type: 'retryDue' })).toEqual([st(phase), []]);
  });
});

describe('tick (heartbeatInterval 1000 ms, last heartbeat at T0)', () => {
  const due = { type: 'tick', now: T0 + 1000, lastSeen: T0 + 1 } as const;
  test('clean, due and traffic since → heartbeating [heartbeat]', () =>
    expect(step(st(CLEAN), due)).toEqual([st(CLEAN, { heartbeating: true, lastHeartbeat: T0 + 1000 }), ['heartbeat']]));
  test('not due yet: nothing', () => expect(step(st(CLEAN), { ...due, now: T0 + 999 })).toEqual([st(CLEAN), []]));
  test('no traffic since the last heartbeat: nothing', () => expect(step(st(CLEAN), { ...due, lastSeen: T0 })).toEqual([st(CLEAN), []]));
  test('a heartbeat in flight: nothing', () => expect(step(st(CLEAN, { heartbeating: true }), due)).toEqual([st(CLEAN, { heartbeating: true }), []]));
  test('retrying → dirty [disarm, write] (a write instead of the heartbeat)', () =>
    expect(step(st(RETRYING), due)).toEqual([st(DIRTY, { lastHeartbeat: T0 + 1000 }), ['disarm', 'write']]));
  test('dirty or writing: the write under way is the chance; the heartbeat slot is used', () => {
    for (const phase of [DIRTY, WRITING, AGAIN]) expect(step(st(phase), due)).toEqual([st(phase, { lastHeartbeat: T0 + 1000 }), []]);
  });
  test('retired, orphaned: nothing', () => {
    expect(step(st(RETIRED), due)).toEqual([st(RETIRED), []]);
    expect(step(st(RETRYING, { orphaned: true }), due)).toEqual([st(RETRYING, { orphaned: true }), []]);
  });
  test('beaten: heartbeat over, backoff reset, the end of a failure episode [recovered]', () => {
    expect(step(st(CLEAN, { heartbeating: true }), { type: 'beaten' })).toEqual([st(CLEAN), []]);
    expect(step(st(CLEAN, { heartbeating: true, failing: true, backoff: 100 }), { type: 'beaten' })).toEqual([st(CLEAN), ['recovered']]);
  });
});

describe('retire (unbind without delete, connection closed)', () => {
  test('clean → retired (everything is stored)', () => expect(step(st(CLEAN), { type: 'retire' })).toEqual([st(RETIRED), []]));
  test('dirty, writing, retrying → orphaned [orphan], same phase (still written, still retried)', () => {
    for (const phase of [DIRTY, WRITING, AGAIN, RETRYING]) {
      expect(step(st(phase), { type: 'retire' })).toEqual([st(phase, { orphaned: true }), ['orphan']]);
    }
  });
  test('not restored yet (bound, query not answered): orphaned, not retired', () =>
    expect(step(st(RETRYING, { restored: false }), { type: 'retire' })).toEqual([st(RETRYING, { restored: false, orphaned: true }), ['orphan']]));
  test('already orphaned or retired: nothing', () => {
    expect(step(st(RETRYING, { orphaned: true }), { type: 'retire' })).toEqual([st(RETRYING, { orphaned: true }), []]);
    expect(step(st(RETIRED), { type: 'retire' })).toEqual([st(RETIRED), []]);
  });
});

describe('drop (unbind with delete, rebind, orphan merged into a new bind, gate closed)', () => {
  test('any live phase → retired; a retry timer is cancelled', () => {
    for (const phase of [CLEAN, DIRTY, WRITING, AGAIN]) expect(step(st(phase), { type: 'drop' })).toEqual([st(RETIRED), []]);
    expect(step(st(RETRYING), { type: 'drop' })).toEqual([st(RETIRED), ['disarm']]);
  });
  test('an orphan is released', () =>
    expect(step(st(RETRYING, { orphaned: true }), { type: 'drop' })).toEqual([st(RETIRED, { orphaned: true }), ['disarm', 'release']]));
  test('retired: nothing', () => expect(step(st(RETIRED), { type: 'drop' })).toEqual([st(RETIRED), []]));
});

describe('flush (gate stopping)', () => {
  test('retrying → dirty [disarm, write]: one last attempt now', () =>
    expect(step(st(RETRYING), { type: 'flush' })).toEqual([st(DIRTY), ['disarm', 'write']]));
  test('other phases: nothing new (a scheduled or running write is the attempt)', () => {
    for (const phase of [CLEAN, DIRTY, WRITING, AGAIN, RETIRED]) expect(step(st(phase), { type: 'flush' })).toEqual([st(phase), []]);
  });
});
