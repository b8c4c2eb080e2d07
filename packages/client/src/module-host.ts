import { randomBytes } from 'node:crypto';
import {
  FunctionNotFoundError,
  RpcError,
  TransportClosedError,
  isSessionData,
  type AppComponent,
  type AppContext,
  type CallContext,
  type RpcServerHandle,
  type RpcValue,
} from '@mqgate/rpc';
import { UserDirectory } from '@mqgate/rpc';
import { describe } from './errors';
import type { Handler, HandlerPayload, ModuleContext, ModuleDefinition } from './module';
import { Session, type GuestRule } from './session';

export interface ModuleHostOptions {
  /**
   * Server id to serve under. Default: `${type}@${16 random hex chars}`, new on every
   * start, like mqant's node ids. Give a fixed one to address this instance as `type@id`.
   */
  serverId?: string;
  /** Guest rule every Session this module receives gets (mqant's global `JudgeGuest`, which it fails to apply over RPC). */
  guestRule?: GuestRule;
  /** ms `stop()` waits for in-flight calls before giving up on them. Default 10 000. */
  stopTimeout?: number;
}

type State = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * Runs one {@link ModuleDefinition} as an app component: serves its handlers on the app's
 * transport under `{ serverId, moduleType: type }`.
 *
 * A call's arguments are `[session, payload]`: the session as SessionData (else the call
 * fails with code `BAD_ARGUMENT`), the payload as a plain object or bytes (given to the
 * handler as a Buffer sharing the same memory). An unknown function fails with
 * `FunctionNotFoundError` (code `NOT_FOUND`). A handler's result goes back as is when it is
 * bytes, as `null` when `undefined`, and otherwise must be JSON-serialisable (else code
 * `BAD_RESULT`). Calls run concurrently (mqant `RegisterGO`).
 *
 * `stop()` is graceful: it stops taking calls, waits up to `stopTimeout` ms for the calls in
 * flight, then runs `onStop`. (mqant bounds shutdown only by a process-wide KillWaitTTL.)
 * A host runs once: it cannot be started again after `stop()`.
 */
export class ModuleHost implements AppComponent {
  /** The module type. */
  readonly name: string;
  readonly definition: ModuleDefinition;
  private readonly guestRule: GuestRule | undefined;
  private readonly stopTimeout: number;
  private readonly fixedServerId: string | undefined;
  private state: State = 'idle';
  private moduleCtx: ModuleContext | undefined;
  private handle: RpcServerHandle | undefined;
  private inFlight = 0;
  private onDrained: (() => void) | undefined;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;

  /**
   * @throws TypeError when the definition has no handlers map or an option has the wrong type.
   */
  constructor(definition: ModuleDefinition, options: ModuleHostOptions = {}) {
    if (typeof definition !== 'object' || definition === null || typeof definition.type !== 'string' || typeof definition.handlers !== 'object') {
      throw new TypeError(`ModuleHost: definition must come from defineModule(), got ${describe(definition)}`);
    }
    const { serverId, guestRule, stopTimeout } = options;
    if (serverId !== undefined && (typeof serverId !== 'string' || serverId === '')) {
      throw new TypeError(`ModuleHost(${definition.type}): serverId must be a non-empty string, got ${describe(serverId)}`);
    }
    if (guestRule !== undefined && typeof guestRule !== 'function') {
      throw new TypeError(`ModuleHost(${definition.type}): guestRule must be a function, got ${describe(guestRule)}`);
    }
    if (stopTimeout !== undefined && !(typeof stopTimeout === 'number' && stopTimeout >= 0)) {
      throw new TypeError(`ModuleHost(${definition.type}): stopTimeout must be a number of ms >= 0, got ${describe(stopTimeout)}`);
    }
    this.definition = definition;
    this.name = definition.type;
    this.fixedServerId = serverId;
    this.guestRule = guestRule;
    this.stopTimeout = stopTimeout ?? 10_000;
  }

  /** The server id while started (set at `start()`), else undefined. */
  get serverId(): string | undefined {
    return this.moduleCtx?.serverId;
  }

  /** Handler calls running now. */
  get activeCalls(): number {
    return this.inFlight;
  }

  /**
   * Runs `onStart`, then serves the handlers. When serving fails after `onStart` succeeded,
   * it runs `onStop` to undo it; then it rethrows.
   * @throws Error when called more than once; whatever `onStart` or `transport.serve` throws.
   */
  start(ctx: AppContext): Promise<void> {
    if (this.state !== 'idle') return Promise.reject(new Error(`ModuleHost(${this.name}): start() may be called only once`));
    this.state = 'starting';
    this.starting = this.doStart(ctx);
    return this.starting;
  }

  private async doStart(ctx: AppContext): Promise<void> {
    const serverId = this.fixedServerId ?? `${this.name}@${randomBytes(8).toString('hex')}`;
    const mctx: ModuleContext = {
      transport: ctx.transport,
      logger: ctx.logger,
      serverId,
      users: new UserDirectory(ctx.transport, ctx.userIndex),
    };
    this.moduleCtx = mctx;
    let hookRan = false;
    try {
      if (this.definition.onStart) {
        await this.definition.onStart(mctx);
        hookRan = true;
      }
      this.handle = await ctx.transport.serve({ serverId, moduleType: this.name }, (fn, args, cctx) => this.dispatch(fn, args, cctx));
    } catch (err) {
      this.state = 'stopped';
      if (hookRan && this.definition.onStop) {
        await Promise.resolve()
          .then(() => this.definition.onStop?.(mctx))
          .catch((e: unknown) => ctx.logger.warn({ module: this.name, serverId, err: String(e) }, 'onStop failed while undoing a failed start'));
      }
      this.moduleCtx = undefined;
      throw err;
    }
    this.state = 'running';
    ctx.logger.info({ module: this.name, serverId }, 'module started');
  }

  /**
   * Stops taking calls (new ones fail with code `CLOSED`), waits up to `stopTimeout` ms for
   * the calls in flight (logging a warning for those it abandons), then runs `onStop`.
   * Idempotent; a no-op before `start()`.
   * @throws whatever `onStop` throws.
   */
  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'starting') await this.starting?.catch(() => undefined);
    if (this.state !== 'running') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    const mctx = this.moduleCtx as ModuleContext;
    const log = { module: this.name, serverId: mctx.serverId };
    try {
      await this.handle?.close();
    } catch (err) {
      mctx.logger.warn({ ...log, err: String(err) }, 'closing the server failed');
    }
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      const drained = await new Promise<boolean>((resolve) => {
        this.onDrained = () => resolve(true);
        timer = setTimeout(() => resolve(false), this.stopTimeout);
      });
      clearTimeout(timer);
      this.onDrained = undefined;
      if (!drained)
        mctx.logger.warn({ ...log, inFlight: this.inFlight, stopTimeoutMs: this.stopTimeout }, 'stop timed out; abandoning calls in flight');
    }
    this.handle = undefined;
    try {
      await this.definition.onStop?.(mctx);
    } finally {
      this.state = 'stopped';
      mctx.logger.info(log, 'module stopped');
    }
  }

  /** The RpcHandler served on the transport. */
  private async dispatch(fn: string, args: RpcValue[], cctx: CallContext): Promise<RpcValue> {
    const mctx = this.moduleCtx;
    if (this.state !== 'running' || !mctx) throw new TransportClosedError(`module server ${mctx?.serverId ?? this.name}`);
    const handlers = this.definition.handlers as Readonly<Record<string, Handler>>;
    const handler = Object.prototype.hasOwnProperty.call(handlers, fn) ? handlers[fn] : undefined;
    if (!handler) throw new FunctionNotFoundError(this.name, fn);
    const [rawSession, rawPayload] = args;
    if (!isSessionData(rawSession))
      throw new RpcError(`${this.name}/${fn}: argument 0 must be a session, got ${describe(rawSession)}`, 'BAD_ARGUMENT');
    const payload = toPayload(rawPayload);
    if (payload === undefined) {
      throw new RpcError(`${this.name}/${fn}: argument 1 must be a JSON object or bytes, got ${describe(rawPayload)}`, 'BAD_ARGUMENT');
    }
    const session = new Session(rawSession, mctx.transport, { guestRule: this.guestRule, logger: mctx.logger });
    this.inFlight++;
    try {
      const result: unknown = await handler(session, payload, {
        fn: cctx.fn,
        deadline: cctx.deadline,
        users: mctx.users,
        transport: mctx.transport,
        logger: mctx.logger,
        serverId: mctx.serverId,
        mqtt5: rawSession.mqtt5,
      });
      return toResult(this.name, fn, result);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.onDrained?.();
    }
  }
}

function toPayload(value: RpcValue | undefined): HandlerPayload | undefined {
  if (value instanceof Uint8Array) return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && !isSessionData(value)) {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) return value as Record<string, unknown>;
  }
  return undefined;
}

function toResult(type: string, fn: string, result: unknown): RpcValue {
  if (result === undefined) return null;
  if (result instanceof Uint8Array) return result;
  const problem = jsonProblem(result, 'the result', new Set());
  if (problem) throw new RpcError(`${type}/${fn}: ${problem}, so it cannot be sent`, 'BAD_RESULT');
  return result as RpcValue;
}

/**
 * Why `JSON.stringify(value)` would throw or yield nothing, or undefined when it would not.
 * Follows JSON.stringify: nested functions and undefined are dropped, objects with a
 * `toJSON` method are trusted.
 */
function jsonProblem(value: unknown, path: string, seen: Set<object>): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return undefined;
    case 'bigint':
      return `${path} is a bigint`;
    case 'undefined':
    case 'function':
    case 'symbol':
      return `${path} is a ${typeof value}`;
  }
  if (value === null) return undefined;
  const obj = value as Record<string, unknown>;
  if (typeof obj.toJSON === 'function') return undefined;
  if (seen.has(obj)) return `${path} refers back to itself`;
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      for (let i = 0; i < obj.length; i++) {
        const v: unknown = obj[i];
        if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
        const p = jsonProblem(v, `${path}[${i}]`, seen);
        if (p) return p;
      }
    } else {
      for (const key of Object.keys(obj)) {
        const v = obj[key];
        if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
        const p = jsonProblem(v, `${path}.${key}`, seen);
        if (p) return p;
      }
    }
  } finally {
    seen.delete(obj);
  }
  return undefined;
}
