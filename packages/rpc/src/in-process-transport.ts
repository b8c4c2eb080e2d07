import { DeadlineError, NoServerError, RpcError, TransportClosedError } from './errors';
import {
  describeAddress,
  type Address,
  type CallOptions,
  type RpcHandler,
  type RpcServerHandle,
  type RpcTransport,
  type RpcValue,
  type ServerInfo,
} from './transport';
import { pickSticky } from './sticky';

export interface InProcessTransportOptions {
  /** Default call timeout, ms. Positive. Default 10 000 (mqant's RPCExpired). */
  defaultTimeout?: number;
  /**
   * Calls one server runs at once. At this many a server takes no new calls for its module
   * type (another server of the type below its limit gets them; with none, calls wait in
   * line, in order, until one is free or their deadline passes) and calls addressed to it
   * (serverId or sticky key) wait for it. A positive integer, or Infinity.
   * Default Infinity.
   */
  maxConcurrent?: number;
}

interface Entry {
  info: ServerInfo;
  handler: RpcHandler;
  open: boolean;
  running: number;
  /** Calls addressed to this server, waiting for it to be below maxConcurrent. */
  waiting: Job[];
}

/** A call waiting for, or running on, a server. */
interface Job {
  fn: string;
  args: RpcValue[];
  deadline: number;
  /** The call's timeout, ms (for its DeadlineError). */
  timeout: number;
  /** Runs the call on `entry` (counted in `entry.running` by the caller). */
  run(entry: Entry): void;
  /** Settles the call with an error (deadline, close); false once it has started. */
  fail(err: RpcError): void;
  started: boolean;
  /** A call() that fails with a DeadlineError at `deadline` (callNR: false). */
  expires: boolean;
  /** Links of the transport's list of unsettled calls (see JobList). */
  prev: Job | undefined;
  next: Job | undefined;
  listed: boolean;
}

/** A job not yet started nor listed (one object shape for every call, so call sites stay monomorphic). */
function newJob(
  fn: string,
  args: RpcValue[],
  deadline: number,
  timeout: number,
  expires: boolean,
  fail: (err: RpcError) => void,
  run: (entry: Entry) => void,
): Job {
  return { fn, args, deadline, timeout, run, fail, started: false, expires, prev: undefined, next: undefined, listed: false };
}

function isThenable(v: unknown): v is PromiseLike<RpcValue | void> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * The unsettled calls, in deadline order (earliest first): for close(), and for the one
 * deadline timer of the transport (a timer per call, set and cleared on every call, cost
 * more than the rest of the transport). An intrusive doubly linked list, O(1) out, in at the
 * tail in O(1) when the calls share a timeout (deadlines then come in order), with no
 * allocation. (A Set of a thousand calls in flight, added and deleted on every call, kept
 * rehashing its table: a third of this transport's time went to the garbage collector.)
 */
class JobList {
  private head: Job | undefined;
  private tail: Job | undefined;
  /** Listed calls that expire (call(), not callNR). */
  expiring = 0;

  add(job: Job): void {
    job.listed = true;
    if (job.expires) this.expiring++;
    let after = this.tail;
    while (after !== undefined && after.deadline > job.deadline) after = after.prev;
    job.prev = after;
    job.next = after === undefined ? this.head : after.next;
    if (job.next) job.next.prev = job;
    else this.tail = job;
    if (after) after.next = job;
    else this.head = job;
  }

  delete(job: Job): void {
    if (!job.listed) return;
    job.listed = false;
    if (job.expires) this.expiring--;
    if (job.prev) job.prev.next = job.next;
    else this.head = job.next;
    if (job.next) job.next.prev = job.prev;
    else this.tail = job.prev;
    job.prev = job.next = undefined;
  }

  has(job: Job): boolean {
    return job.listed;
  }

  /** The earliest deadline of a listed call() that expires, or undefined. */
  firstDeadline(): number | undefined {
    for (let j = this.head; j; j = j.next) if (j.expires) return j.deadline;
    return undefined;
  }

  /** The listed calls that expire with a deadline at or before `now`, earliest first. */
  expired(now: number): Job[] {
    const out: Job[] = [];
    for (let j = this.head; j && j.deadline <= now; j = j.next) if (j.expires) out.push(j);
    return out;
  }

  /** A copy of the list, newest first. */
  all(): Job[] {
    const out: Job[] = [];
    for (let j = this.tail; j; j = j.prev) out.push(j);
    return out;
  }
}

/**
 * The transport for an app whose gate and modules share one process. Calls are
 * asynchronous (a handler never runs inside its caller's stack), deadlines hold at both
 * ends (a call that waited past its deadline never starts), and values are passed by
 * reference (senders pass fresh values). Calls to a module type rotate among its servers
 * below `maxConcurrent`; an `Address.key` picks one by rendezvous hashing ({@link pickSticky},
 * the rule every transport uses). close() rejects pending calls with TransportClosedError.
 * @throws RangeError from the constructor for a non-positive `defaultTimeout` or `maxConcurrent`.
 */
export class InProcessTransport implements RpcTransport {
  readonly defaultTimeout: number;
  readonly maxConcurrent: number;
  private readonly byId = new Map<string, Entry>();
  private readonly byType = new Map<string, Entry[]>();
  /** Calls to a module type waiting for any of its servers. */
  private readonly typeWaiting = new Map<string, Job[]>();
  private readonly pending = new JobList();
  private rotation = 0;
  private closed = false;
  /** The one deadline timer (see armDeadline), and the deadline it is armed for (ms). */
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;

  constructor(options: InProcessTransportOptions = {}) {
    this.defaultTimeout = options.defaultTimeout ?? 10_000;
    this.maxConcurrent = options.maxConcurrent ?? Infinity;
    if (!(this.defaultTimeout > 0)) throw new RangeError(`InProcessTransport: defaultTimeout must be positive, got ${this.defaultTimeout}`);
    if (!(this.maxConcurrent > 0)) throw new RangeError(`InProcessTransport: maxConcurrent must be positive, got ${this.maxConcurrent}`);
  }

  async serve(info: ServerInfo, handler: RpcHandler): Promise<RpcServerHandle> {
    if (this.closed) throw new TransportClosedError();
    if (this.byId.has(info.serverId)) throw new RpcError(`server id ${info.serverId} is already serving`, 'DUPLICATE_SERVER');
    const entry: Entry = { info: { ...info }, handler, open: true, running: 0, waiting: [] };
    this.byId.set(info.serverId, entry);
    const list = this.byType.get(info.moduleType) ?? [];
    list.push(entry);
    this.byType.set(info.moduleType, list);
    this.next(entry);
    return {
      info: entry.info,
      close: async () => this.remove(entry),
    };
  }

  private remove(entry: Entry): void {
    if (!entry.open) return;
    entry.open = false;
    this.byId.delete(entry.info.serverId);
    const list = (this.byType.get(entry.info.moduleType) ?? []).filter((e) => e !== entry);
    if (list.length) this.byType.set(entry.info.moduleType, list);
    else this.byType.delete(entry.info.moduleType);
    for (const job of entry.waiting.splice(0)) job.fail(new TransportClosedError(`server ${entry.info.serverId}`));
  }

  /** The server for `to`, or where the call waits: a server's own line (serverId, key) or its type's. */
  private route(to: Address): { entry: Entry } | { line: Job[]; type: string } {
    if (this.closed) throw new TransportClosedError();
    if (to.serverId !== undefined) {
      const e = this.byId.get(to.serverId);
      if (!e) throw new NoServerError(to.serverId);
      return { entry: e };
    }
    const list = to.moduleType === undefined ? undefined : this.byType.get(to.moduleType);
    if (!list || list.length === 0) throw new NoServerError(describeAddress(to));
    if (list.length === 1) return { entry: list[0] };
    if (to.key !== undefined) return { entry: pickSticky(to.key, list, (e) => e.info.serverId) };
    for (let i = 0; i < list.length; i++) {
      this.rotation = (this.rotation + 1) % 0x7fffffff;
      const e = list[this.rotation % list.length];
      if (e.running < this.maxConcurrent) return { entry: e };
    }
    const type = to.moduleType as string;
    const line = this.typeWaiting.get(type) ?? [];
    this.typeWaiting.set(type, line);
    return { line, type };
  }

  /** Starts `job` on the routed server now, or queues it. */
  private dispatch(to: Address, job: Job): void {
    const r = this.route(to);
    this.pending.add(job);
    if ('line' in r) r.line.push(job);
    else if (r.entry.running < this.maxConcurrent) this.start(r.entry, job);
    else r.entry.waiting.push(job);
  }

  private start(entry: Entry, job: Job): void {
    if (Date.now() >= job.deadline) {
      job.fail(new DeadlineError(job.fn, 0)); // never started: past its deadline
      this.next(entry);
      return;
    }
    job.started = true;
    entry.running++;
    job.run(entry);
  }

  /** A call on `entry` ended (or a slot is free): start the next waiting call, its own first. */
  private done(entry: Entry): void {
    entry.running--;
    this.next(entry);
  }

  private next(entry: Entry): void {
    while (entry.open && entry.running < this.maxConcurrent) {
      const job = entry.waiting.shift() ?? this.typeWaiting.get(entry.info.moduleType)?.shift();
      if (!job) return;
      if (!this.pending.has(job)) continue; // already settled (deadline)
      this.start(entry, job);
    }
  }

  call(to: Address, fn: string, args: RpcValue[], opts?: CallOptions): Promise<RpcValue> {
    const timeout = opts?.timeout ?? this.defaultTimeout;
    const deadline = Date.now() + timeout;
    return new Promise<RpcValue>((resolve, reject) => {
      let settled = false;
      const settle = (err: RpcError | undefined, result?: RpcValue) => {
        if (settled) return;
        settled = true;
        this.unlist(job);
        if (err) reject(err);
        else resolve(result === undefined ? null : result);
      };
      const job = newJob(
        fn,
        args,
        deadline,
        timeout,
        true,
        (err) => settle(err),
        (entry) => {
          // One turn later (never inside the caller's stack); a promise, not queueMicrotask, so
          // that fake timers in tests leave it alone.
          void Promise.resolve().then(() => {
            // The dispatch turn may come late (a blocked event loop): do not start late work.
            let ended = false; // a thenable may call back and then throw, or call back twice: one slot, freed once
            const end = (err: RpcError | undefined, result?: RpcValue | void): void => {
              if (ended) return;
              ended = true;
              this.finish(entry, settle, err, result);
            };
            if (Date.now() > deadline) return end(new DeadlineError(fn, timeout));
            try {
              const out = entry.handler(fn, args, { fn, deadline });
              if (!isThenable(out)) return end(undefined, out);
              // A thenable's own `then` may throw: caught below, so its slot is freed.
              out.then(
                (result) => end(undefined, result),
                (err: unknown) => end(asRpcError(err)),
              );
            } catch (err) {
              end(asRpcError(err));
            }
          });
        },
      );
      try {
        this.dispatch(to, job);
      } catch (err) {
        settle(err as RpcError);
        return;
      }
      if (this.pending.has(job)) this.armDeadline(deadline);
    });
  }

  /** A call's handler has answered (or failed, or never started): settles it, then frees its slot on `entry`. */
  private finish(
    entry: Entry,
    settle: (err: RpcError | undefined, result?: RpcValue) => void,
    err: RpcError | undefined,
    result?: RpcValue | void,
  ): void {
    settle(err, result === undefined ? null : result);
    this.done(entry);
  }

  /**
   * Takes a settled job off the list. With no call() left the deadline timer stops holding
   * the process open (unref: a finished app can exit) but stays armed, so that one call at a
   * time (1 × 1) does not set and clear a timer per call.
   */
  private unlist(job: Job): void {
    this.pending.delete(job);
    if (this.pending.expiring === 0 && this.timer !== undefined) this.timer.unref();
  }

  /** Makes the deadline timer fire by `deadline` (it is armed for the earliest one) and hold the process open. */
  private armDeadline(deadline: number): void {
    if (this.timer !== undefined && this.timerAt <= deadline) {
      this.timer.ref();
      return;
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = deadline;
    this.timer = setTimeout(this.expire, Math.max(0, deadline - Date.now()));
  }

  /** The deadline timer: fails every call past its deadline with a DeadlineError, then waits for the next deadline. */
  private readonly expire = (): void => {
    this.timer = undefined;
    for (const job of this.pending.expired(Date.now())) job.fail(new DeadlineError(job.fn, job.timeout));
    const next = this.pending.firstDeadline();
    if (next !== undefined) this.armDeadline(next);
  };

  callNR(to: Address, fn: string, args: RpcValue[]): Promise<void> {
    const deadline = Date.now() + this.defaultTimeout;
    const job = newJob(
      fn,
      args,
      deadline,
      this.defaultTimeout,
      false,
      () => this.pending.delete(job),
      (entry) => {
        this.pending.delete(job);
        Promise.resolve()
          .then(() => entry.handler(fn, args, { fn, deadline }))
          .catch(() => undefined)
          .finally(() => this.done(entry));
      },
    );
    try {
      this.dispatch(to, job);
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve();
  }

  servers(moduleType?: string): ServerInfo[] {
    const entries = moduleType === undefined ? [...this.byId.values()] : (this.byType.get(moduleType) ?? []);
    return entries.map((e) => ({ ...e.info }));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const e of [...this.byId.values()]) this.remove(e);
    this.typeWaiting.clear();
    for (const job of this.pending.all()) job.fail(new TransportClosedError());
  }
}

/** Errors that cross a transport keep a code; plain errors become code REMOTE. */
function asRpcError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  if (err instanceof Error) return new RpcError(err.message, 'REMOTE');
  return new RpcError(String(err), 'REMOTE');
}
