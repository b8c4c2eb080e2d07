import type { Logger } from '../logger';
import type { RedisClient } from './connection';
import { RedisUnavailableError } from './errors';

/**
 * Connection health of one RedisTransport: which of its connections ("roles": `command`,
 * `subscriber`, `registry`, `blocking <serverId>`) are down and their last error. Logs the
 * first failure of an outage (warn) and the recovery (info), never one line per message, and
 * words the {@link RedisUnavailableError}s the transport rejects with.
 */
export class ConnectionHealth {
  private readonly lastErrors = new Map<string, Error>();
  private readonly down = new Set<string>();
  /** Set on close: failures are still remembered, no longer logged. */
  closed = false;

  constructor(
    private readonly transportId: string,
    private readonly logger: Logger,
    private readonly command: RedisClient,
  ) {}

  /** Follows a connection's `error` and `ready` events under `role`. */
  watch(conn: RedisClient, role: string): void {
    conn.on('error', (err: Error) => this.noteFailure(role, err));
    conn.on('ready', () => this.recovered(role));
  }

  /** Remembers a connection error; logs the first of an outage only. */
  noteFailure(role: string, err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.lastErrors.set(role, error);
    if (this.closed || this.down.has(role)) return;
    this.down.add(role);
    this.logger.warn({ transport: this.transportId, connection: role, error: error.message }, 'Redis unavailable; retrying');
  }

  /** Marks `role` as up again (logged when it was down). */
  recovered(role: string): void {
    if (!this.down.delete(role)) return;
    this.lastErrors.delete(role);
    if (!this.closed) this.logger.info({ transport: this.transportId, connection: role }, 'Redis available again');
  }

  /** Forgets a role that is gone (a stopped server's blocking connection). */
  forget(role: string): void {
    this.lastErrors.delete(role);
    this.down.delete(role);
  }

  /**
   * True while the command connection is ready and neither it, the subscriber nor the
   * registry refresh is failing: what this transport knows of the registry is current.
   */
  reachable(): boolean {
    return this.command.status === 'ready' && !this.down.has('command') && !this.down.has('subscriber') && !this.down.has('registry');
  }

  /** `command connection <status>; last error: <message>`, for error messages. */
  describe(): string {
    const last = this.lastErrors.get('command') ?? this.lastErrors.get('registry') ?? this.lastErrors.get('subscriber');
    return `command connection ${this.command.status}${last ? `; last error: ${last.message.replace(/^Error: /, '')}` : ''}`;
  }

  /** `Redis unavailable: <what> (<describe()>)`. */
  unavailable(what: string): RedisUnavailableError {
    return new RedisUnavailableError(`Redis unavailable: ${what} (${this.describe()})`);
  }
}

/** True when `p` resolves within `ms`, false when it does not (or rejects). The timer is cleared. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Waits for `p` at most `ms`; never rejects. */
export async function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  await within(
    p.catch(() => undefined),
    ms,
  );
}
