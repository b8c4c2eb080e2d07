/**
 * Per-connection input rates: token buckets for packets and bytes read from one
 * client. At the limit the connection stops reading (EMQX's `messages_rate` / `bytes_rate`
 * behaviour): the client's further bytes wait in the kernel buffers and TCP flow control
 * slows the client down; it is never disconnected for its rate alone.
 *
 * Buckets refill lazily from the clock at each use (no timer per packet, nothing allocated
 * per packet); the connection holds one timer only while it is paused, to resume.
 */

/** A rate: `perSecond` tokens (packets, or bytes) added per second, at most `burst` held. */
export interface RateLimit {
  /** Sustained rate, per second (> 0). */
  perSecond: number;
  /** Most tokens held: what a client may send at once after being quiet (≥ 1). Default twice `perSecond`. */
  burst: number;
}

/** ms of refill a paused connection waits for before reading again (at most `burst`): a paused client is woken ≤ 20 times a second. */
const RESUME_AFTER_MS = 50;

/**
 * A token bucket. It starts full. `take` may leave it below zero (a read chunk is charged
 * whole); the debt is paid by a longer pause, so the average rate holds.
 */
export class TokenBucket {
  tokens: number;
  private at: number;
  private readonly perMs: number;
  /** Tokens to wait for once dry before reading again: 50 ms of refill, at least 1, at most `burst`. */
  private readonly resumeAt: number;

  constructor(
    readonly limit: RateLimit,
    now: number,
  ) {
    this.tokens = limit.burst;
    this.at = now;
    this.perMs = limit.perSecond / 1000;
    this.resumeAt = Math.min(limit.burst, Math.max(1, this.perMs * RESUME_AFTER_MS));
  }

  /** Adds the tokens earned since the last call (ms clock), up to `burst`. */
  refill(now: number): void {
    const dt = now - this.at;
    if (dt <= 0) return;
    this.at = now;
    const t = this.tokens + dt * this.perMs;
    this.tokens = t < this.limit.burst ? t : this.limit.burst;
  }

  /** Takes `n` tokens (after refill); true when the bucket is dry after it (less than one whole token). */
  take(n: number, now: number): boolean {
    this.refill(now);
    this.tokens -= n;
    return this.tokens < 1;
  }

  /** ms from the last refill until the bucket holds enough to read again (0 when it does). */
  waitMs(): number {
    const missing = this.resumeAt - this.tokens;
    return missing <= 0 ? 0 : Math.ceil(missing / this.perMs);
  }
}

/** Which input rate paused a connection: the option's name. */
export type RateLimitName = 'messageRate' | 'byteRate';

/**
 * A connection's input rates: packets (`messageRate`, any packet type: a PINGREQ flood
 * counts) and bytes (`byteRate`). Charged after each parse batch: messages per parsed packet,
 * bytes per batch of a read chunk. A batch parses at most as many packets as the message bucket
 * holds, so a chunk of a thousand PINGREQs is cut at the limit, at a packet boundary; bytes are
 * charged per batch (at most one read: 64 KiB on TCP, one WebSocket message), so a byteRate
 * pause may start a chunk late and then lasts long enough to pay the debt.
 */
export class InputRate {
  private readonly messages: TokenBucket | undefined;
  private readonly bytes: TokenBucket | undefined;

  constructor(messageRate: RateLimit | false, byteRate: RateLimit | false, now: number) {
    this.messages = messageRate ? new TokenBucket(messageRate, now) : undefined;
    this.bytes = byteRate ? new TokenBucket(byteRate, now) : undefined;
  }

  /** A rate limiter for these options, or undefined when both are off. */
  static of(messageRate: RateLimit | false, byteRate: RateLimit | false, now: number): InputRate | undefined {
    return messageRate || byteRate ? new InputRate(messageRate, byteRate, now) : undefined;
  }

  /** Packets that may be parsed now (at least 1 while not paused; large when messageRate is off). */
  budget(now: number): number {
    const m = this.messages;
    if (!m) return MAX_BUDGET;
    m.refill(now);
    return m.tokens >= 1 ? Math.floor(m.tokens) : 1;
  }

  /**
   * Charges a parse batch: `packets` parsed, `bytes` read. Returns the limit that ran dry
   * (reading must pause for {@link waitMs}), or undefined.
   */
  charge(packets: number, bytes: number, now: number): RateLimitName | undefined {
    const dryMessages = this.messages !== undefined && packets > 0 && this.messages.take(packets, now);
    const dryBytes = this.bytes !== undefined && this.bytes.take(bytes, now);
    return dryMessages ? 'messageRate' : dryBytes ? 'byteRate' : undefined;
  }

  /** ms until both buckets hold enough to read again. */
  waitMs(now: number): number {
    this.messages?.refill(now);
    this.bytes?.refill(now);
    return Math.max(this.messages?.waitMs() ?? 0, this.bytes?.waitMs() ?? 0);
  }

  /** The limit of a bucket, for log lines. */
  limitOf(name: RateLimitName): RateLimit | undefined {
    return name === 'messageRate' ? this.messages?.limit : this.bytes?.limit;
  }
}

const MAX_BUDGET = 0x7fffffff;
