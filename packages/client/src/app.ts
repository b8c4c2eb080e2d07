import { EventEmitter } from 'node:events';
import {
  InProcessTransport,
  MemoryUserIndex,
  UserDirectory,
  silentLogger,
  type AppComponent,
  type AppContext,
  type Logger,
  type RpcTransport,
  type UserIndex,
} from '@mqgate/rpc';
import { describe } from './errors';
import type { ModuleDefinition } from './module';
import { ModuleHost, type ModuleHostOptions } from './module-host';

export interface AppOptions {
  /**
   * Carries every call between the gate and modules. Default: a new InProcessTransport
   * (everything in this process), which the app then closes when it stops. A transport
   * given here is left open.
   */
  transport?: RpcTransport;
  /** Default: silentLogger. */
  logger?: Logger;
  /**
   * Where users are connected, shared by the app's gates and modules. Default: a
   * MemoryUserIndex (one process); use a RedisUserIndex when gates run in several processes.
   */
  userIndex?: UserIndex;
}

/**
 * Events of an {@link App}. `error` is emitted only when a listener is attached (so an
 * unobserved failure never throws from `emit`); the failure also reaches the caller of
 * `start()`/`stop()`.
 */
export interface AppEvents {
  /** Every component has started. */
  started: [];
  /** Every component has been stopped (some may have failed to; see `error`). */
  stopped: [];
  /** A component failed to start or stop. */
  error: [error: unknown, component: AppComponent | undefined];
}

type State = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * An app: the gate and modules sharing one transport (mqant `app.Run(mods...)`).
 * Components start in the order they were added and stop in reverse. An app runs once:
 * after `stop()` (or a failed `start()`) it cannot be started again.
 */
export class App extends EventEmitter<AppEvents> {
  readonly transport: RpcTransport;
  readonly logger: Logger;
  readonly userIndex: UserIndex;
  /** Users across gates: isConnect, sendToUser, kickUser, broadcast, counts. */
  readonly users: UserDirectory;
  private readonly ownsTransport: boolean;
  private readonly list: AppComponent[] = [];
  private readonly started: AppComponent[] = [];
  private state: State = 'idle';
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;

  constructor(options: AppOptions = {}) {
    super();
    this.ownsTransport = options.transport === undefined;
    this.transport = options.transport ?? new InProcessTransport();
    this.logger = options.logger ?? silentLogger;
    this.userIndex = options.userIndex ?? new MemoryUserIndex();
    this.users = new UserDirectory(this.transport, this.userIndex);
  }

  /** The components added so far, in start order. */
  get components(): readonly AppComponent[] {
    return [...this.list];
  }

  /**
   * Adds a component (a gate, a ModuleHost, anything with `name`, `start(ctx)`, `stop()`).
   * @returns the app, for chaining.
   * @throws TypeError for something that is not a component or was already added;
   *   Error once `start()` has been called.
   */
  use(component: AppComponent): this {
    if (typeof component !== 'object' || component === null || typeof component.start !== 'function' || typeof component.stop !== 'function') {
      throw new TypeError(`App.use: component must have start(ctx) and stop() methods, got ${describe(component)}`);
    }
    if (typeof component.name !== 'string') throw new TypeError(`App.use: component.name must be a string, got ${describe(component.name)}`);
    if (this.state !== 'idle') throw new Error(`App.use(${component.name}): components must be added before start()`);
    if (this.list.includes(component)) throw new TypeError(`App.use(${component.name}): this component was already added`);
    this.list.push(component);
    return this;
  }

  /**
   * Runs a module definition: `use(new ModuleHost(definition, hostOptions))`.
   * @returns the app, for chaining.
   * @throws like {@link use} and the ModuleHost constructor.
   */
  module(definition: ModuleDefinition, hostOptions?: ModuleHostOptions): this {
    return this.use(new ModuleHost(definition, hostOptions));
  }

  /**
   * Starts the components one after another, in the order they were added. If one fails,
   * stops those already started (in reverse) and rethrows its error; the app is then done.
   * Emits `started` on success.
   * @throws Error when called more than once; the failing component's error.
   */
  start(): Promise<void> {
    if (this.state !== 'idle') return Promise.reject(new Error('App.start: an app starts only once'));
    this.state = 'starting';
    this.starting = this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const ctx: AppContext = { transport: this.transport, logger: this.logger, userIndex: this.userIndex };
    for (const c of this.list) {
      try {
        await c.start(ctx);
      } catch (err) {
        this.logger.error({ component: c.name, err: String(err) }, 'component failed to start; stopping the others');
        this.emitError(err, c);
        await this.stopAll();
        this.state = 'stopped';
        throw err;
      }
      this.started.push(c);
    }
    this.state = 'running';
    this.logger.info({ components: this.list.map((c) => c.name) }, 'app started');
    this.emit('started');
  }

  /**
   * Stops the started components in reverse order, each awaited, even when some fail;
   * then closes the transport if the app created it, and emits `stopped`. Idempotent:
   * later calls return the same promise. Waits for a `start()` in progress first.
   * @throws AggregateError whose `errors` are every component's stop error (in stop order),
   *   after all were stopped; its message names the components.
   */
  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.state === 'starting') await this.starting?.catch(() => undefined);
    if (this.state === 'stopped') return;
    const wasRunning = this.state === 'running';
    this.state = 'stopping';
    const failures = await this.stopAll();
    this.state = 'stopped';
    if (wasRunning) this.logger.info({}, 'app stopped');
    this.emit('stopped');
    if (failures.length > 0) {
      const names = failures.map((f) => f.name).join(', ');
      throw new AggregateError(
        failures.map((f) => f.error),
        `App.stop: ${failures.length} component(s) failed to stop: ${names}`,
      );
    }
  }

  /** Stops what was started, newest first, then the app's own transport. Never throws. */
  private async stopAll(): Promise<Array<{ name: string; error: unknown }>> {
    const failures: Array<{ name: string; error: unknown }> = [];
    while (this.started.length > 0) {
      const c = this.started.pop() as AppComponent;
      try {
        await c.stop();
      } catch (err) {
        this.logger.error({ component: c.name, err: String(err) }, 'component failed to stop');
        this.emitError(err, c);
        failures.push({ name: c.name, error: err });
      }
    }
    if (this.ownsTransport) {
      try {
        await this.transport.close();
      } catch (err) {
        this.emitError(err, undefined);
        failures.push({ name: 'transport', error: err });
      }
    }
    return failures;
  }

  private emitError(err: unknown, component: AppComponent | undefined): void {
    if (this.listenerCount('error') > 0) this.emit('error', err, component);
  }
}

/**
 * Creates an {@link App}. Add the gate with `use(gate)` and modules with `module(def)`,
 * then `start()`.
 */
export function createApp(options: AppOptions = {}): App {
  return new App(options);
}
