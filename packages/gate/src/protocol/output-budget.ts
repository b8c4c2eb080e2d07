/**
 * The gate's bound on unsent output across all its connections (gate option
 * `maxBufferedBytesTotal`). Each connection may hold up to maxBufferedBytes, but
 * nothing bounded the sum: 500 clients that do not read a broadcast storm took a gate to
 * 2 GB. The budget keeps a running total, O(1) per write: a write adds its bytes, and after
 * each tick's writes are handed to the kernel (wire/tick-cork.ts) the connection reports
 * what is still unsent, so the total follows the kernel down again.
 *
 * Besides its unsent output, a connection holds bytes for its client that no socket counts:
 * the QoS 1 pushes in its inflight window and queued behind it, kept until the client's
 * PUBACK (MQTT-4.3.2). The connection reports their sum with {@link hold}; they are in the
 * total too, so clients that read their pushes and never acknowledge them are bounded
 * like clients that do not read.
 *
 * Only connections holding bytes (unsent after a tick, or held) are tracked by name
 * (`backlogged`); they are the candidates the sweep closes, largest holders first, while the
 * total is over the limit, and the ones it re-reads (a socket that drains without a further
 * write reports nothing by itself). A connection that keeps up never enters that set.
 */

/** What the budget knows of one connection. */
export interface BudgetMember {
  /** Unsent bytes of this connection in the budget's total. */
  counted: number;
  /** Bytes this connection holds for its client besides its unsent output (QoS 1 pushes not acknowledged), in the total. */
  pushBytes: number;
  /** True while in the budget's backlogged set. */
  backlogged: boolean;
  /** Bytes written and not yet handed to the kernel, now. */
  unsentBytes(): number;
}

/** Everything `m` holds for its client in the budget's total: unsent output and held pushes, bytes. */
export function holding(m: BudgetMember): number {
  return m.counted + m.pushBytes;
}

/** ms at least between two sweeps started because a write took the total over the limit. */
export const BUDGET_SWEEP_INTERVAL = 50;

export class OutputBudget<M extends BudgetMember = BudgetMember> {
  /** Unsent output bytes across all connections, as last reported: exact after each tick. */
  total = 0;
  /** Connections with unsent bytes after their last tick (the slow ones; the rest keep up). */
  readonly backlogged = new Set<M>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private lastSweep = 0;

  /**
   * @param limit bytes; the total above it is "over".
   * @param shed closes a connection the sweep chose (the largest holders, while over the
   *   limit) with what it holds, bytes; its bytes leave the total when its socket reports
   *   closed (`release`).
   */
  constructor(
    readonly limit: number,
    private readonly shed: (member: M, unsent: number, total: number) => void,
  ) {}

  /** True while the total is above the limit. */
  get over(): boolean {
    return this.total > this.limit;
  }

  /** A write of `bytes` to `m` (not yet handed to the kernel). */
  add(m: M, bytes: number): void {
    m.counted += bytes;
    this.total += bytes;
    if (this.total > this.limit && this.sweepTimer === undefined) this.sweepSoon();
  }

  /** What `m` still holds unsent, as its wire reports it (after a tick's flush, in a sweep). */
  settle(m: M, unsent: number): void {
    this.total += unsent - m.counted;
    m.counted = unsent;
    this.track(m);
  }

  /** What `m` holds for its client besides its output, bytes, now (its QoS 1 pushes not acknowledged). */
  hold(m: M, held: number): void {
    this.total += held - m.pushBytes;
    m.pushBytes = held;
    this.track(m);
    if (this.total > this.limit && this.sweepTimer === undefined) this.sweepSoon();
  }

  /** Keeps `m` in the backlogged set while it holds anything. */
  private track(m: M): void {
    if (holding(m) > 0) {
      if (!m.backlogged) {
        m.backlogged = true;
        this.backlogged.add(m);
      }
    } else if (m.backlogged) {
      m.backlogged = false;
      this.backlogged.delete(m);
    }
  }

  /**
   * `m`'s socket has closed: nothing of it is buffered any more, and what it held leaves the
   * total (a detached session's pushes are bounded by maxDetachedBytesTotal instead).
   */
  release(m: M): void {
    this.hold(m, 0);
    this.settle(m, 0);
  }

  /**
   * Re-reads the backlogged connections and, while the total is over the limit, closes the
   * ones holding the most (unsent output and held pushes) first until what they hold brings
   * it back under.
   * O(k log k) in the backlogged connections, run from the gate's periodic sweep and at
   * most every {@link BUDGET_SWEEP_INTERVAL} ms while writes find the total over.
   * @returns how many connections were closed.
   */
  sweep(): number {
    this.lastSweep = Date.now();
    for (const m of this.backlogged) this.settle(m, m.unsentBytes());
    let excess = this.total - this.limit;
    if (excess <= 0) return 0;
    const largest = [...this.backlogged].sort((a, b) => holding(b) - holding(a));
    let closed = 0;
    for (const m of largest) {
      if (excess <= 0) break;
      excess -= holding(m);
      closed++;
      this.shed(m, holding(m), this.total);
    }
    return closed;
  }

  private sweepSoon(): void {
    const wait = Math.max(0, this.lastSweep + BUDGET_SWEEP_INTERVAL - Date.now());
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweep();
    }, wait);
    this.sweepTimer.unref();
  }

  /** Cancels a pending sweep (gate stop). */
  close(): void {
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }
}
