import { decodeSession, makeSessionData, type SessionData } from '@mqgate/rpc';
import { MemoryStorage, StorageError, type MemoryStorageOptions, type StorageHandler } from '@mqgate/storage';

export type StorageOp = 'storage' | 'delete' | 'query' | 'heartbeat';

/** One StorageHandler call as the decorator saw it. */
export interface StorageCall {
  op: StorageOp;
  userId: string;
  /** Date.now() when the call was made. */
  at: number;
  /** Settings handed to `storage` / `heartbeat` (a copy). */
  settings?: Record<string, string>;
  /** undefined while in flight, then true / false. */
  ok?: boolean;
}

/**
 * A StorageHandler decorator around a real {@link MemoryStorage}: records every call (per
 * method and per user), can be switched to fail (`failing = true`: every call, or only the
 * methods in `failOps`, rejects with a StorageError "store down" without reaching the inner
 * store), and can hold `storage` writes until released (to observe a write in progress).
 * Stands in for a broken store in unit tests.
 */
export class CountingStorage implements StorageHandler {
  readonly inner: MemoryStorage;
  readonly calls: StorageCall[] = [];
  /** When true, calls reject with a StorageError "store down" (see `failOps`). */
  failing = false;
  /** Methods that fail while `failing` (default: all of them). */
  failOps: ReadonlySet<StorageOp> | undefined;
  private held: { promise: Promise<void>; release: () => void } | undefined;

  constructor(options: MemoryStorageOptions = {}) {
    this.inner = new MemoryStorage(options);
  }

  /** Calls made so far, optionally of one method and/or one user (failed calls included). */
  count(op?: StorageOp, userId?: string): number {
    return this.calls.filter((c) => (op === undefined || c.op === op) && (userId === undefined || c.userId === userId)).length;
  }

  /** Calls still in flight. */
  inFlight(op?: StorageOp): number {
    return this.calls.filter((c) => c.ok === undefined && (op === undefined || c.op === op)).length;
  }

  /** From now on, `storage` calls wait until {@link release}. */
  hold(): void {
    if (this.held) return;
    let release!: () => void;
    const promise = new Promise<void>((r) => (release = r));
    this.held = { promise, release };
  }

  /** Lets held and future `storage` calls through. */
  release(): void {
    const h = this.held;
    this.held = undefined;
    h?.release();
  }

  /** What the inner store holds for a user: its settings, or null. */
  async stored(userId: string): Promise<Record<string, string> | null> {
    const bytes = await this.inner.query(userId);
    return bytes ? { ...decodeSession(bytes).settings } : null;
  }

  /** Puts settings for a user straight into the inner store (not counted). */
  async preload(userId: string, settings: Record<string, string>): Promise<void> {
    await this.inner.storage(makeSessionData({ userId, settings }));
  }

  close(): Promise<void> {
    this.release();
    return this.inner.close();
  }

  storage(session: SessionData): Promise<void> {
    return this.run('storage', session.userId, { ...session.settings }, async () => {
      if (this.held) await this.held.promise;
      await this.inner.storage(session);
    });
  }

  delete(session: SessionData): Promise<void> {
    return this.run('delete', session.userId, undefined, () => this.inner.delete(session));
  }

  query(userId: string): Promise<Uint8Array | null> {
    return this.run('query', userId, undefined, () => this.inner.query(userId));
  }

  heartbeat(session: SessionData): Promise<void> {
    return this.run('heartbeat', session.userId, { ...session.settings }, () => this.inner.heartbeat(session));
  }

  private async run<T>(op: StorageOp, userId: string, settings: Record<string, string> | undefined, fn: () => Promise<T>): Promise<T> {
    const call: StorageCall = { op, userId, at: Date.now(), settings };
    this.calls.push(call);
    try {
      if (this.failing && (!this.failOps || this.failOps.has(op))) {
        throw new StorageError(op, userId, new Error('store down'));
      }
      const result = await fn();
      call.ok = true;
      return result;
    } catch (err) {
      call.ok = false;
      throw err;
    }
  }
}
