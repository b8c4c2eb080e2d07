import { performance } from 'node:perf_hooks';

/**
 * The deadlines of a transport's pending calls on one Node timer, instead of a timer (and a
 * closure) per call. Calls are grouped by timeout (ms); within a group they are in deadline
 * order (insertion order of a Map, the clock being monotonic), so a sweep looks at each
 * group's first entries only, and adding or removing a call is a Map set or delete. The
 * timer is armed for the earliest head; it is cleared when no call is left (a process with
 * nothing pending is not held), and re-armed earlier when a call with a shorter timeout comes.
 *
 * Timing is Node's: a call expires no earlier than `timeout` ms after {@link add} (on the
 * monotonic clock, `performance.now()`), in the timer callback of the event loop then.
 */
export class DeadlineSweep<K> {
  /** timeout ms → (key → deadline, monotonic ms), each in deadline order. */
  private readonly groups = new Map<number, Map<K, number>>();
  private count = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Monotonic ms the timer is armed for (Infinity when none). */
  private armedFor = Infinity;
  private readonly sweepNow = () => this.sweep();

  /** @param expire called once per key whose deadline passed (after it is removed here). */
  constructor(private readonly expire: (key: K) => void) {}

  /** Keys waiting for their deadlines. */
  get size(): number {
    return this.count;
  }

  /** Starts `key`'s deadline: `timeout` ms from now (0 or more; a key already here is first removed by the caller). */
  add(key: K, timeout: number): void {
    let group = this.groups.get(timeout);
    if (!group) {
      group = new Map();
      this.groups.set(timeout, group);
    }
    const deadline = performance.now() + timeout;
    group.set(key, deadline);
    this.count++;
    if (deadline < this.armedFor) this.arm(deadline);
  }

  /** Stops `key`'s deadline (it was added with `timeout`). No-op for a key not here. */
  delete(key: K, timeout: number): void {
    const group = this.groups.get(timeout);
    if (!group?.delete(key)) return;
    this.count--;
    if (group.size === 0) this.groups.delete(timeout);
    if (this.count === 0) this.disarm();
  }

  /** Expires every key whose deadline passed, then arms the timer for the earliest left. */
  private sweep(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = performance.now();
    const due: K[] = [];
    for (const [timeout, group] of this.groups) {
      for (const [key, deadline] of group) {
        if (deadline > now) break;
        group.delete(key);
        this.count--;
        due.push(key);
      }
      if (group.size === 0) this.groups.delete(timeout);
    }
    let next = Infinity;
    for (const group of this.groups.values()) {
      const head = group.values().next().value as number;
      if (head < next) next = head;
    }
    if (next < Infinity) this.arm(next);
    for (const key of due) this.expire(key);
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(this.sweepNow, Math.max(0, Math.ceil(at - performance.now())));
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }
}
