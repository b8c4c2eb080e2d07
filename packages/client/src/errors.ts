import { RpcError } from '@mqgate/rpc';
import { describeValue, isClientText } from '@mqgate/rpc/internal';

/**
 * A Session verb (an RPC to the owning gate) failed.
 *
 * `code` is the cause's code: `NO_SESSION` (the gate no longer holds this session: the
 * client disconnected), `NO_SERVER` (the gate is gone), `DEADLINE` (no answer in time),
 * `CLOSED` (transport closed), `BAD_REPLY` (the gate answered something of the wrong
 * shape), or whatever code the gate sent. mqant returns a bare error string instead.
 *
 * The message names the verb, its key arguments (never setting values or bodies) and the
 * first 8 characters of the session id, e.g.
 * `Session.bind("u1") failed for session 3f9c01ab…: No session found: …`. A cause that is a
 * client text (its message starts with its code, e.g. `STORAGE_UNAVAILABLE: …`, rpc
 * CLIENT_TEXTS) keeps its message as it is, so a handler passing it on sends a client neither
 * the session id nor the verb (they are in `verb` and `sessionId`).
 */
export class SessionVerbError extends RpcError {
  /** The verb that failed, e.g. `bind`, `push`, `send`. */
  readonly verb: string;
  /** The full id of the session the verb was called on. */
  readonly sessionId: string;
  /** The error the transport or the gate reported. */
  override readonly cause: RpcError;

  constructor(verb: string, argsText: string, sessionId: string, cause: RpcError) {
    super(
      isClientText(cause) ? cause.message : `Session.${verb}(${argsText}) failed for session ${shortId(sessionId)}: ${cause.message}`,
      cause.code,
    );
    this.verb = verb;
    this.sessionId = sessionId;
    this.cause = cause;
  }
}

/** First 8 characters of a session id, for messages: ids are bearer-like, logs need not hold them whole. */
export function shortId(id: string): string {
  if (id === '') return '(no id)';
  return id.length > 8 ? `${id.slice(0, 8)}…` : id;
}

/** Any thrown value as an RpcError, keeping its code when it has one (plain errors become `REMOTE`). */
export function toRpcError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  if (err instanceof Error) return new RpcError(err.message, 'REMOTE');
  return new RpcError(String(err), 'REMOTE');
}

/** A short description of a value's type for error messages. */
export const describe = describeValue;
