import { RpcError, type AnyErrorCode } from '@mqgate/rpc';

/**
 * A session change took effect on the gate but the StorageHandler failed to store it (code
 * `STORAGE_UNAVAILABLE`: the live session keeps the change and the gate retries until it
 * is stored), or a delete at an explicit logout failed (code `STORAGE`). The message is a
 * client text (rpc `CLIENT_TEXTS`): short, starting with the code, without the store's
 * error, which is `cause` (logged by the gate with the session id and trace id, never sent).
 */
export class PersistenceError extends RpcError {
  override readonly cause: Error;
  constructor(code: AnyErrorCode, text: string, cause: Error) {
    super(text, code);
    this.cause = cause;
  }
}
