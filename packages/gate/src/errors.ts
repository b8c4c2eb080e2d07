import { RpcError } from '@mqgate/rpc';

/**
 * A session change took effect on the gate but the StorageHandler failed to store it. The
 * live session keeps the change and the gate keeps retrying until it is stored; code
 * `STORAGE`. The message says which verb, that the value is live, and the store's error.
 */
export class PersistenceError extends RpcError {
  constructor(what: string, cause: Error) {
    super(`${what}: ${cause.message}`, 'STORAGE');
  }
}
