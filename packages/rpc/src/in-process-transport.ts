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
  /** Default call timeout, ms. Default 10 000 (mqant's RPCExpired). */
  defaultTimeout?: number;
}

interface Entry {
  info: ServerInfo;
  handler: RpcHandler;
  open: boolean;
}

/**
 * The transport for an app whose gate and modules share one process. Calls are
 * asynchronous (a handler never runs inside its caller's stack), deadlines hold at both
 * ends, and values are passed by reference (senders pass fresh values).
 * Calls to a module type rotate among its servers; an `Address.key` picks one by rendezvous
 * hashing ({@link pickSticky}, the rule RedisTransport uses too).
 */
export class InProcessTransport implements RpcTransport {
  readonly defaultTimeout: number;
  private readonly byId = new Map<string, Entry>();
  private readonly byType = new Map<string, Entry[]>();
  private rotation = 0;
  private closed = false;

  constructor(options: InProcessTransportOptions = {}) {
    this.defaultTimeout = options.defaultTimeout ?? 10_000;
  }

  async serve(info: ServerInfo, handler: RpcHandler): Promise<RpcServerHandle> {
    if (this.closed) throw new TransportClosedError();
    if (this.byId.has(info.serverId)) throw new RpcError(`server id ${info.serverId} is already serving`, 'DUPLICATE_SERVER');
    const entry: Entry = { info: { ...info }, handler, open: true };
    this.byId.set(info.serverId, entry);
    const list = this.byType.get(info.moduleType) ?? [];
    list.push(entry);
    this.byType.set(info.moduleType, list);
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
  }

  private pick(to: Address): Entry {
    if (this.closed) throw new TransportClosedError();
    if (to.serverId !== undefined) {
      const e = this.byId.get(to.serverId);
      if (!e) throw new NoServerError(to.serverId);
      return e;
    }
    const list = to.moduleType === undefined ? undefined : this.byType.get(to.moduleType);
    if (!list || list.length === 0) throw new NoServerError(describeAddress(to));
    if (list.length === 1) return list[0];
    if (to.key !== undefined) return pickSticky(to.key, list, (e) => e.info.serverId);
    this.rotation = (this.rotation + 1) % 0x7fffffff;
    return list[this.rotation % list.length];
  }

  call(to: Address, fn: string, args: RpcValue[], opts?: CallOptions): Promise<RpcValue> {
    let entry: Entry;
    try {
      entry = this.pick(to);
    } catch (err) {
      return Promise.reject(err);
    }
    const timeout = opts?.timeout ?? this.defaultTimeout;
    const deadline = Date.now() + timeout;
    return new Promise<RpcValue>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DeadlineError(fn, timeout)), timeout);
      Promise.resolve()
        .then(() => {
          if (Date.now() > deadline) throw new DeadlineError(fn, timeout);
          return entry.handler(fn, args, { fn, deadline });
        })
        .then(
          (result) => {
            clearTimeout(timer);
            resolve(result === undefined ? null : result);
          },
          (err: unknown) => {
            clearTimeout(timer);
            reject(asRpcError(err));
          },
        );
    });
  }

  callNR(to: Address, fn: string, args: RpcValue[]): Promise<void> {
    let entry: Entry;
    try {
      entry = this.pick(to);
    } catch (err) {
      return Promise.reject(err);
    }
    const deadline = Date.now() + this.defaultTimeout;
    Promise.resolve()
      .then(() => entry.handler(fn, args, { fn, deadline }))
      .catch(() => undefined);
    return Promise.resolve();
  }

  servers(moduleType?: string): ServerInfo[] {
    const entries = moduleType === undefined ? [...this.byId.values()] : this.byType.get(moduleType) ?? [];
    return entries.map((e) => ({ ...e.info }));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const e of [...this.byId.values()]) this.remove(e);
  }
}

/** Errors that cross a transport keep a code; plain errors become code REMOTE. */
function asRpcError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  if (err instanceof Error) {
    const e = new RpcError(err.message, 'REMOTE');
    return e;
  }
  return new RpcError(String(err), 'REMOTE');
}
