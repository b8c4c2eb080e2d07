/**
 * The bound on what detached sessions hold, bytes, across the gate (gate option
 * `maxDetachedBytesTotal`). Each detached session's replay buffer is bounded on its own
 * (resumeBufferMessages, resumeBufferBytes), and it also carries the QoS 1 pushes its client
 * had not acknowledged (up to maxBufferedBytes); nothing bounded the sum: 600 dropped
 * sessions held 2.3 GB for their whole resume window. Every buffer reports what it adds and
 * frees ({@link charge}, O(1)); past the limit the oldest pushes of the oldest detached
 * sessions are evicted first (counted in each buffer's `lost`, so the resume says what is
 * missing) until the total is back under.
 */

export class DetachedBytes {
  /** Bytes held by detached sessions now (bodies + topics + 64 each; a broadcast's Buffer counts once per session). */
  total = 0;
  /** Pushes evicted past the limit since start. */
  evicted = 0;
  private evicting = false;

  /**
   * @param limit bytes; 0 = no bound.
   * @param evict frees at least {@link excess} bytes (the oldest pushes of the oldest detached
   *   sessions first, through {@link charge}); returns how many pushes it evicted.
   */
  constructor(
    readonly limit: number,
    private readonly evict: () => number,
  ) {}

  /** A buffer added (`delta` > 0) or freed (`delta` < 0) bytes; over the limit, evicts. */
  charge(delta: number): void {
    this.total += delta;
    if (this.limit === 0 || this.total <= this.limit || this.evicting) return;
    this.evicting = true;
    try {
      this.evicted += this.evict();
    } finally {
      this.evicting = false;
    }
  }

  /** Bytes over the limit now (0 when under or unbounded). */
  get excess(): number {
    return this.limit === 0 ? 0 : Math.max(0, this.total - this.limit);
  }
}
