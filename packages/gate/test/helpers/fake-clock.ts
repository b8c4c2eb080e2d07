import type { PersistenceClock } from '../../src/persistence/persistence';
import { turns } from './waiters';

interface FakeTimer {
  at: number;
  ms: number;
  fn: () => void;
}

/**
 * A PersistenceClock whose time only moves with {@link advance}: timers fire then, in order
 * of their due time. `setImmediate` is the real one (a tick is a tick: it needs no time).
 */
export class FakeClock implements PersistenceClock {
  time = 1_000_000;
  private timers: FakeTimer[] = [];

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { at: this.time + ms, ms, fn };
    this.timers.push(timer);
    return timer;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }

  setImmediate(fn: () => void): void {
    setImmediate(fn);
  }

  /** The delays (ms) of the timers not fired yet, in the order they were set. */
  pending(): number[] {
    return this.timers.map((t) => t.ms);
  }

  /** Moves time on by `ms`, firing the timers due by then, earliest first. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.fn();
    }
    this.time = end;
  }
}

/** Resolves once `check()` is truthy, letting the event loop turn (no time passes); rejects after 200 turns. */
export async function eventually(what: string, check: () => unknown | Promise<unknown>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await turns(1);
  }
  throw new Error(`not reached after 200 event-loop turns: ${what}`);
}
