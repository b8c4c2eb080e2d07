/** How often ended connections are checked, ms: one is cut `boundMs` to `boundMs` + this after its end. */
const SWEEP_MS = 250;

/**
 * Bounds how long an ended connection may take to flush what was written (a peer that never
 * reads would keep it half-open): `cut` is called on one still open `boundMs` after its
 * {@link ended}. One sweep for all of them instead of a timer per close, and one that closes
 * ({@link closed}) is let go at once (a timer would hold it, its MQTT connection and session
 * for the whole bound).
 */
export class EndBound<T extends object> {
  /** Ended and not closed yet → when to cut it (insertion order is deadline order). */
  private readonly ending = new Map<T, number>();
  private sweep: NodeJS.Timeout | undefined;

  /**
   * @param boundMs ms an ended connection has to close by itself
   * @param cut closes one at once (destroy / terminate)
   */
  constructor(
    private readonly boundMs: number,
    private readonly cut: (target: T) => void,
  ) {}

  /** `target` was ended (idempotent: the first end's deadline holds). */
  ended(target: T): void {
    if (this.ending.has(target)) return;
    this.ending.set(target, Date.now() + this.boundMs);
    this.sweep ??= setInterval(() => this.cutDue(), SWEEP_MS).unref();
  }

  /** `target` has closed: nothing to cut. */
  closed(target: T): void {
    this.ending.delete(target);
  }

  private cutDue(): void {
    const now = Date.now();
    for (const [target, at] of this.ending) {
      if (at > now) break;
      this.ending.delete(target);
      this.cut(target);
    }
    if (this.ending.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }
}
