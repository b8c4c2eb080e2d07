import { HANDLER_PREFIX, type CallContext, type Logger, type Mqtt5Request, type RpcTransport, type UserDirectory } from '@mqgate/rpc';
import { describe } from './errors';
import type { Session } from './session';

/** What a module's hooks and handlers can reach besides the session. */
export interface ModuleContext {
  /** The app's transport, e.g. to call other modules. */
  transport: RpcTransport;
  logger: Logger;
  /** This module instance's server id (`type@id`). */
  serverId: string;
  /** Users across gates: isConnect, sendToUser, kickUser, broadcast, counts. */
  users: UserDirectory;
}

/**
 * The third argument of a handler: the transport's {@link CallContext} (`fn`, and
 * `deadline` in epoch ms, after which the caller has given up) plus the {@link ModuleContext},
 * and for a request from an MQTT 5 client its properties.
 */
export interface HandlerContext extends CallContext, ModuleContext {
  /**
   * The MQTT 5 request's `{ userProperties?, contentType?, correlationData? }` (MQTT 5.0
   * §3.3.2.3), or undefined when the request carried none of them (always for 3.1 / 3.1.1).
   * The gate echoes Correlation Data on the reply by itself. To put User Properties or a
   * Content Type on the reply, return `replyWithProperties(result, { userProperties, contentType })`.
   */
  mqtt5: Mqtt5Request | undefined;
}

/**
 * A request body as a handler receives it (mqant's rule): a JSON object body becomes a
 * plain object, anything else arrives as bytes. The Buffer shares memory with what the
 * gate sent: do not change it.
 */
export type HandlerPayload = Record<string, unknown> | Buffer;

/**
 * A client-callable function. Its result goes back to the client: bytes are written as is,
 * `undefined` becomes `null`, anything else must be JSON-serialisable; a result wrapped by
 * `replyWithProperties` also sets the MQTT 5 reply's User Properties / Content Type. Throw
 * to answer with an error (the message reaches the client).
 */
export type Handler = (session: Session, payload: HandlerPayload, ctx: HandlerContext) => unknown;

/** Names a client may call: mqant's rule, they start with `HD_` ({@link HANDLER_PREFIX}). */
export type HandlerName = `${typeof HANDLER_PREFIX}${string}`;

export type Handlers = { readonly [name: HandlerName]: Handler };

/** A lifecycle hook; a rejection fails the module's start (onStart) or stop (onStop). */
export type ModuleHook = (ctx: ModuleContext) => void | Promise<void>;

/** The input of {@link defineModule}. */
export interface ModuleSpec<H extends Handlers = Handlers> {
  /** Module type clients address (`type/HD_x` or `type@id/HD_x`): non-empty, no `/` or `@`. */
  type: string;
  handlers: H;
  /** Runs before the module takes calls. */
  onStart?: ModuleHook;
  /** Runs after the module has stopped taking calls and its in-flight calls are done (or timed out). */
  onStop?: ModuleHook;
}

/** A validated, frozen module: what {@link ModuleHost} and `App.module` run. */
export interface ModuleDefinition<H extends Handlers = Handlers> {
  readonly type: string;
  readonly handlers: Readonly<H>;
  readonly onStart?: ModuleHook;
  readonly onStop?: ModuleHook;
}

/**
 * Checks and freezes a module definition (mqant: a module's `GetType()` plus
 * `GetServer().RegisterGO("HD_x", fn)` calls; every handler here runs concurrently, like RegisterGO).
 * The handlers map is copied, so later changes to it have no effect.
 * @throws TypeError when the type is empty or holds `/` or `@`, a handler name lacks the
 *   `HD_` prefix, a handler or hook is not a function.
 */
export function defineModule<H extends Handlers>(spec: ModuleSpec<H>): ModuleDefinition<H> {
  if (typeof spec !== 'object' || spec === null) throw new TypeError(`defineModule: expected { type, handlers }, got ${describe(spec)}`);
  const { type, handlers, onStart, onStop } = spec;
  if (typeof type !== 'string' || type === '' || /[/@]/.test(type)) {
    throw new TypeError(
      `defineModule: type must be a non-empty string without "/" or "@", got ${typeof type === 'string' ? JSON.stringify(type) : describe(type)}`,
    );
  }
  if (typeof handlers !== 'object' || handlers === null || Array.isArray(handlers)) {
    throw new TypeError(`defineModule(${type}): handlers must be an object of functions, got ${describe(handlers)}`);
  }
  const copy: Record<string, Handler> = {};
  for (const name of Object.keys(handlers)) {
    if (!name.startsWith(HANDLER_PREFIX) || name.length === HANDLER_PREFIX.length) {
      throw new TypeError(`defineModule(${type}): handler name ${JSON.stringify(name)} must start with "${HANDLER_PREFIX}" and name something`);
    }
    const fn: unknown = (handlers as Record<string, unknown>)[name];
    if (typeof fn !== 'function') throw new TypeError(`defineModule(${type}): handler ${name} must be a function, got ${describe(fn)}`);
    copy[name] = fn as Handler;
  }
  if (onStart !== undefined && typeof onStart !== 'function')
    throw new TypeError(`defineModule(${type}): onStart must be a function, got ${describe(onStart)}`);
  if (onStop !== undefined && typeof onStop !== 'function')
    throw new TypeError(`defineModule(${type}): onStop must be a function, got ${describe(onStop)}`);
  return Object.freeze({
    type,
    handlers: Object.freeze(copy) as Readonly<H>,
    ...(onStart ? { onStart } : {}),
    ...(onStop ? { onStop } : {}),
  });
}
