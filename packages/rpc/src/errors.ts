/**
 * Error classes shared by the gate, modules and transports. Every error carries a stable
 * `code` so that it survives a trip over a transport that only carries strings
 * (see {@link toWireError} / {@link fromWireError}).
 */

/** Base class: something went wrong in an RPC call. */
export class RpcError extends Error {
  constructor(
    message: string,
    /** Stable machine-readable code, e.g. `NO_SERVER`, `DEADLINE`, `NOT_FOUND`, `REMOTE`. */
    readonly code: string = 'REMOTE',
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** No live server serves the module type or server id the call was addressed to. */
export class NoServerError extends RpcError {
  constructor(target: string) {
    // mqant's wording, so clients matching on it keep working.
    super(`Service(type:${target}) not found`, 'NO_SERVER');
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
    super(`Method(${fn}) not found in ${server}`, 'NOT_FOUND');
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
  code: string;
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
