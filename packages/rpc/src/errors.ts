import { clipInput } from './input-echo';

/**
 * Every error code mqgate sends or throws, and the error classes of the rpc layer
 * (fastify's `lib/errors.js` and ioredis's error classes are the models). Every error
 * mqgate throws is an {@link RpcError} carrying one of these codes, so that it survives a
 * trip over a transport that only carries strings (see {@link toWireError} /
 * {@link fromWireError}). The table of docs/reference/error-codes.md is checked against
 * {@link ERROR_CODES} by a test.
 */

/**
 * Code → what it means. The keys are the codes; a module's own handlers may throw an
 * RpcError with a code of their own, which reaches the caller unchanged.
 */
export const ERROR_CODES = {
  REMOTE: 'a handler threw an error without a code (any plain Error)',
  NO_SERVER: 'no live server serves the module type or server id called (`Service(type:x) not found`)',
  DEADLINE: 'no reply within the call timeout',
  NOT_FOUND: 'the server has no function by that name',
  CLOSED: 'the transport or the server was closed',
  UNAVAILABLE: 'the transport cannot reach its broker (Redis or NATS down)',
  DUPLICATE_SERVER: 'a server id that is already serving on this transport',
  ENCODE: 'a value that cannot cross the wire (a function, a cycle, a BigInt...)',
  DECODE: 'bytes from the wire that do not decode (a malformed request or reply)',
  NO_SESSION: 'a session verb named a session id the gate does not hold (the client has gone)',
  BAD_ARGUMENT: 'a session verb got an argument of the wrong shape; the message names the verb and the argument',
  BAD_REPLY: "the gate's answer to a session verb has the wrong shape",
  BAD_RESULT: "a handler's result cannot be sent (not an RpcValue)",
  LIMIT: 'a session verb would take the session past one of the gate limits (the message names it); nothing changed',
  DUPLICATE_LOGIN: 'the duplicate-login policy rejects a new bind of the user',
  USER_INDEX: 'the user index could not be reached during a bind',
  STORAGE: 'a StorageHandler call failed (its StorageError); from UnBind with delete: the session is unbound, its stored copy may remain',
  STORAGE_UNAVAILABLE:
    'the session store could not take a Bind or a settings change: it is live on the gate and stored when the store is back (a gate stop before that logs the users)',
  BAD_OPTION:
    'an option of a component (gate, transport, storage, the mqgate command) is out of its range; thrown at construction, the message names the option, the rule and the value',
  BANNED: 'a Bind of a user id that is banned (`gate.ban({ userId }, ms)`, shared across gates by the user index)',
} as const;

/**
 * The texts the gate's own session errors carry (what reaches an MQTT client when a handler
 * passes the error on): short, stable, starting with their code, never a session id, a store
 * address or a connection state. The full cause goes to the gate's log with the trace id.
 */
export const CLIENT_TEXTS = {
  STORAGE_UNAVAILABLE: 'STORAGE_UNAVAILABLE: the change is live on the gate and will be stored when the store is back',
  STORAGE_UNAVAILABLE_BIND:
    'STORAGE_UNAVAILABLE: logged in on the gate; stored settings will be merged and the session stored when the store is back',
  STORAGE: 'STORAGE: logged out, but the stored session could not be deleted',
  USER_INDEX: 'USER_INDEX: the login could not be made (the user index is unavailable); try again',
  DUPLICATE_LOGIN: 'DUPLICATE_LOGIN: the user is already logged in and the duplicate login policy rejects a new session',
  BANNED: 'BANNED: the user is banned',
  // What the gate answers a client for a failed call of an mqgate code (clientTextOf): the
  // cause, with server ids, session ids and transport states, goes to the gate's log.
  NO_SERVER: 'NO_SERVER: the module is unavailable; try again',
  DEADLINE: 'DEADLINE: no reply in time; the request may or may not have been done',
  NOT_FOUND: 'NOT_FOUND: the module has no such handler',
  CLOSED: 'CLOSED: the module is stopping; try again',
  UNAVAILABLE: 'UNAVAILABLE: the modules cannot be reached now; try again',
  DUPLICATE_SERVER: 'DUPLICATE_SERVER: the module is misconfigured',
  ENCODE: 'ENCODE: the request or its reply cannot be encoded',
  DECODE: 'DECODE: a message could not be decoded',
  NO_SESSION: 'NO_SESSION: the session has ended',
  BAD_ARGUMENT: 'BAD_ARGUMENT: the module passed a bad argument to a session verb',
  BAD_REPLY: "BAD_REPLY: the gate's answer to the module had the wrong shape",
  BAD_RESULT: "BAD_RESULT: the handler's result cannot be sent",
  LIMIT: 'LIMIT: the request would take the session past a gate limit; nothing changed',
  BAD_OPTION: 'BAD_OPTION: the module is misconfigured',
} as const;

/**
 * The text a client gets for a failed call (the gate's reply envelope `Error`): an error that
 * already carries a client text keeps it; one of mqgate's own codes (except `REMOTE`) gets
 * its {@link CLIENT_TEXTS} entry; mqant's `Service(type:<target>) not found` for the very
 * target the client addressed stays (mqant clients match on it, and it names only what the
 * client sent); a handler's own error (code `REMOTE` or an app's code) keeps its message, the
 * app's text to its client (mqant's errstr).
 */
export function clientTextOf(err: unknown, addressed?: string): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as { code?: unknown; message: string };
  if (isClientText(e)) return e.message;
  const code = typeof e.code === 'string' ? e.code : 'REMOTE';
  if (code === 'NO_SERVER' && addressed !== undefined && e.message === `Service(type:${addressed}) not found`) return e.message;
  return code in CLIENT_TEXTS && code in ERROR_CODES ? CLIENT_TEXTS[code as keyof typeof CLIENT_TEXTS] : e.message;
}

/** True when `err` carries a client text: its message starts with its own code and `: ` (see {@link CLIENT_TEXTS}). */
export function isClientText(err: { code?: unknown; message: string }): boolean {
  return typeof err.code === 'string' && err.code !== '' && err.message.startsWith(`${err.code}: `);
}

/** One of mqgate's own error codes (see {@link ERROR_CODES}). */
export type ErrorCode = keyof typeof ERROR_CODES;

/** A code: one of mqgate's, or an app's own (any other string). */
export type AnyErrorCode = ErrorCode | (string & Record<never, never>);

/** The codes as constants, `ErrorCodes.NO_SESSION === 'NO_SESSION'`. */
export const ErrorCodes = Object.freeze(Object.fromEntries(Object.keys(ERROR_CODES).map((k) => [k, k])) as { readonly [K in ErrorCode]: K });

/** Base class of every mqgate error: something went wrong in or behind an RPC call. */
export class RpcError extends Error {
  constructor(
    message: string,
    /** Stable machine-readable code (see {@link ERROR_CODES}); default `REMOTE`. */
    readonly code: AnyErrorCode = 'REMOTE',
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** No live server serves the module type or server id the call was addressed to. */
export class NoServerError extends RpcError {
  constructor(target: string) {
    // mqant's wording, so clients matching on it keep working.
    super(`Service(type:${clipInput(target)}) not found`, 'NO_SERVER');
  }
}

/**
 * A call was in flight to a server that died: code `NO_SERVER`, rejected as soon as the
 * transport notices instead of at the call's deadline. The call may or may not have run.
 * RedisTransport notices by the heartbeat (no heartbeat for `heartbeatTimeout` ms) or an
 * expired registry entry; NatsTransport by NATS's no-responders answer to a probe of the
 * server's own subject, or by its registry entry expiring. The message says which module and
 * server, e.g. `module unavailable: server echo@1 (type echo) stopped answering (no heartbeat
 * for 1000 ms) while call ping was in flight; it may or may not have run`.
 */
export class ServerLostError extends RpcError {
  constructor(message: string) {
    super(message, 'NO_SERVER');
  }
}

/** The call's deadline passed before a reply arrived (mqant: "deadline exceeded"). */
export class DeadlineError extends RpcError {
  constructor(fn: string, timeoutMs: number) {
    super(`deadline exceeded: ${fn} got no reply within ${timeoutMs} ms`, 'DEADLINE');
  }
}

/** The server has no function by that name. */
export class FunctionNotFoundError extends RpcError {
  constructor(server: string, fn: string) {
    super(`Method(${clipInput(fn)}) not found in ${server}`, 'NOT_FOUND');
  }
}

/** A session verb named a session id the gate does not hold (mqant: "No Sesssion found"). */
export class SessionNotFoundError extends RpcError {
  constructor(sessionId: string) {
    super(`No session found: ${sessionId} is not connected to this gate`, 'NO_SESSION');
  }
}

/** The transport or its server was closed. */
export class TransportClosedError extends RpcError {
  constructor(what = 'transport') {
    super(`${what} is closed`, 'CLOSED');
  }
}

/** Serialised form of an error on the wire: `code` and `message`. */
export interface WireError {
  code: AnyErrorCode;
  message: string;
}

export function toWireError(err: unknown): WireError {
  if (err instanceof RpcError) return { code: err.code, message: err.message };
  if (err instanceof Error) return { code: 'REMOTE', message: err.message };
  return { code: 'REMOTE', message: String(err) };
}

/** Rebuilds an RpcError (with its code) from its wire form. */
export function fromWireError(w: WireError): RpcError {
  return new RpcError(w.message, w.code || 'REMOTE');
}

/** A session verb's argument has the wrong shape; code `BAD_ARGUMENT`, the message names the verb and the argument. */
export class BadArgumentError extends RpcError {
  constructor(verb: string, what: string) {
    super(`${verb}: ${what}`, 'BAD_ARGUMENT');
  }
}

/** An answer of the wrong shape (the gate's answer to a session verb); code `BAD_REPLY`. */
export class BadReplyError extends RpcError {
  constructor(what: string) {
    super(`the gate's answer is malformed: ${what}`, 'BAD_REPLY');
  }
}

/** A short description of a value's type for error messages (`null`, `an array`, `12 bytes`, `a string`, ...). */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (typeof value === 'string') return value === '' ? 'an empty string' : 'a string';
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

/** A change would take a session past one of the gate's limits; code `LIMIT`, the message names the limit. Nothing changed. */
export class LimitError extends RpcError {
  constructor(verb: string, what: string) {
    super(`${verb}: ${what}`, 'LIMIT');
  }
}
