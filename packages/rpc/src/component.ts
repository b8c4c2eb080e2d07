import type { Logger } from './logger';
import type { RpcTransport } from './transport';
import type { UserIndex } from './user-index';

/** What an app hands each component when it starts. */
export interface AppContext {
  transport: RpcTransport;
  logger: Logger;
  /**
   * Where users are connected, shared by every component of the app (see UserIndex).
   * Required, so that a gate and a module started together always share one index
   * (`createApp` passes its own: a MemoryUserIndex unless given one).
   */
  userIndex: UserIndex;
}

/**
 * A part of an app with a lifecycle: the gate, a module. The app starts components in the
 * order they were added and stops them in reverse. Both the gate and the client package
 * implement this shape without importing each other.
 */
export interface AppComponent {
  /** For logs and errors, e.g. `gate` or `user`. */
  readonly name: string;
  start(ctx: AppContext): Promise<void>;
  /** Graceful: finish or time out work in flight, then release everything. */
  stop(): Promise<void>;
}
