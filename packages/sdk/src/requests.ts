import { ConnectionLostError, GateError, TimeoutError } from './errors.js';
import type { Envelope } from './wire.js';

/** Longest delay setTimeout takes (2^31 − 1 ms). */
const MAX_TIMER = 2_147_483_647;

/** One request (or one wait for the connection) of a {@link RequestTable}. */
export interface Pending {
  readonly route: string;
  /** What is published; undefined for a wait, which is released without a publish. */
  readonly body: Uint8Array | string | undefined;
  readonly retry: boolean;
  /** Its deadline, ms from the call. */
  readonly timeout: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Its key among the sent ones once published: the correlation id (MQTT 5) or the request topic (3.1.1). */
  key: string | undefined;
  readonly resolve: (result: unknown) => void;
  readonly reject: (err: Error) => void;
}

/**
 * The requests of one client: those sent (by correlation key) and those waiting for a
 * connection, each with its deadline. Every request settles once: by its reply, its
 * deadline (TimeoutError), a lost connection or the client's end (ConnectionLostError).
 */
export class RequestTable {
  private readonly sent = new Map<string, Pending>();
  private waiting: Pending[] = [];

  constructor(
    /** Most requests sent or waiting at once (`maxPending`). */
    private readonly max: number,
  ) {}

  /**
   * A new request, its deadline running from now.
   * @throws RangeError when `max` requests are pending already.
   */
  create(route: string, body: Pending['body'], timeout: number, retry: boolean, resolve: Pending['resolve'], reject: Pending['reject']): Pending {
    if (body !== undefined && this.sent.size + this.waiting.length >= this.max)
      throw new RangeError(`${this.max} requests pending already (maxPending)`);
    const p: Pending = { route, body, retry, timeout, timer: undefined, key: undefined, resolve, reject };
    p.timer = setTimeout(() => this.expire(p), Math.min(timeout, MAX_TIMER));
    return p;
  }

  /** Queues `p` until the connection is ready (see {@link takeWaiting}). */
  wait(p: Pending): void {
    this.waiting.push(p);
  }

  /** The waiting requests, in order, removed from the queue. */
  takeWaiting(): Pending[] {
    const queued = this.waiting;
    this.waiting = [];
    return queued;
  }

  /** `p` was published under `key`. */
  sentAs(p: Pending, key: string): void {
    p.key = key;
    this.sent.set(key, p);
  }

  isSent(key: string): boolean {
    return this.sent.has(key);
  }

  /** Settles the sent request of `key` with its reply envelope; false when none waits for it (timed out, dropped). */
  settle(key: string, env: Envelope): boolean {
    const p = this.sent.get(key);
    if (!p) return false;
    this.sent.delete(key);
    clearTimeout(p.timer);
    if (env.Error !== '') p.reject(new GateError(env.Error, p.route, env.Trace, env.Result));
    else p.resolve(env.Result);
    return true;
  }

  /** Releases a wait (a request without body) that was waiting for the connection. */
  release(p: Pending): void {
    clearTimeout(p.timer);
    p.resolve(undefined);
  }

  /** The connection closed: sent requests reject, except `retry` ones, which wait (first) for the next connection. */
  dropSent(reason: string): void {
    const retried: Pending[] = [];
    for (const p of this.sent.values()) {
      if (p.retry) {
        p.key = undefined;
        retried.push(p);
      } else {
        clearTimeout(p.timer);
        p.reject(new ConnectionLostError(p.route, reason));
      }
    }
    this.sent.clear();
    this.waiting = [...retried, ...this.waiting];
  }

  /** The client ended: everything rejects. */
  rejectAll(reason: string): void {
    const all = [...this.sent.values(), ...this.waiting];
    this.sent.clear();
    this.waiting = [];
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(new ConnectionLostError(p.route, reason));
    }
  }

  private expire(p: Pending): void {
    if (p.key !== undefined && this.sent.get(p.key) === p) this.sent.delete(p.key);
    else this.waiting = this.waiting.filter((w) => w !== p);
    p.reject(new TimeoutError(p.route, p.timeout));
  }
}
