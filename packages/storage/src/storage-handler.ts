import { RpcError, type SessionData } from '@mqgate/rpc';
import { messageOf } from '@mqgate/rpc/internal';

/**
 * Where a gate persists sessions so that a client who reconnects, to this gate or another
 * one sharing the store, gets its settings back when it logs in again. mqant's
 * StorageHandler (gate/define.go) with promises. What is stored is the protobuf Session
 * (`encodeSession` from @mqgate/rpc: mqant `SessionImp` bytes), keyed by user id, so a store
 * shared with a Go mqant gate reads the same data.
 *
 * Every method rejects (never throws synchronously, never hangs without bound) when the
 * store fails, with an error that names the operation and the user id ({@link StorageError}
 * is made for that). The gate never calls two writes for the same user at once from one
 * gate; different gates may.
 *
 * Implementations here: `MemoryStorage` (one process) and `RedisStorage` (shared). To
 * write your own, implement these four methods and run `describeStorageHandler` (the
 * conformance suite) against it in a jest test.
 */
export interface StorageHandler {
  /**
   * Persists the session under `session.userId`, replacing what was stored, and (re)starts
   * its expiry. The gate calls it after Bind (with the stored settings merged in) and after
   * every settings change while the session is bound (several changes in one tick: one
   * call), and again to retry a failed write. Never called for a guest (`userId === ""`).
   * Must be atomic per user: a concurrent `query` sees the old or the new bytes, whole.
   * What to store is `encodeSession(session)`; a `query` must return those bytes unchanged.
   */
  storage(session: SessionData): Promise<void>;
  /**
   * Removes what is stored for `session.userId`. The gate calls it on an explicit logout
   * (unbind with delete, or the gate's `deleteOnUnbind`), never on a plain disconnect.
   * Deleting a user with nothing stored succeeds.
   */
  delete(session: SessionData): Promise<void>;
  /**
   * Resolves the session bytes last stored for a user (any Uint8Array, a Buffer is fine),
   * or `null` when nothing unexpired is stored. The gate calls it on Bind, decodes the bytes
   * with `decodeSession` and merges the stored settings into the live session (keys already
   * live win).
   */
  query(userId: string): Promise<Uint8Array | null>;
  /**
   * Tells the store the user is still online: refreshes the expiry of what is stored. The
   * gate calls it for bound sessions only, at most once per `heartbeatInterval`, while the
   * client shows any traffic (PINGREQ included). It must not overwrite what is stored (a
   * newer write may come from another gate). If nothing is stored any more (it expired or
   * was deleted elsewhere), an implementation should store `encodeSession(session)` again.
   */
  heartbeat(session: SessionData): Promise<void>;
}

/**
 * A store operation failed. `operation` is the StorageHandler method, `userId` whose data
 * it was; `cause` is the store's own error (e.g. an ioredis error), kept as is.
 *
 * The message reads `<operation>(<userId as JSON>) failed: <what happened>`, e.g.
 * `storage("u1") failed: Connection is closed.`. What happened is `detail` when given,
 * else the cause's message. An RpcError whose `code` is always `"STORAGE"`.
 */
export class StorageError extends RpcError {
  /**
   * @param operation the StorageHandler method that failed
   * @param userId the user whose data it was (`""` when the caller gave none)
   * @param cause the underlying error, or any thrown value
   * @param detail what happened, for the message; default: `cause`'s message
   */
  constructor(
    readonly operation: 'storage' | 'delete' | 'query' | 'heartbeat',
    readonly userId: string,
    override readonly cause: unknown,
    detail?: string,
  ) {
    super(`${operation}(${JSON.stringify(userId)}) failed: ${detail ?? messageOf(cause)}`, 'STORAGE');
  }
}
