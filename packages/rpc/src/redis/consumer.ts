import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger';
import { RpcError, toWireError, TransportClosedError } from '../errors';
import { messageOf } from '../error-message';
import { decodeRequest, encodeResponse, RequestArgsError, type RpcRequest } from '../rpc-codec';
import type { RpcHandler, RpcServerHandle, RpcValue, ServerInfo } from '../transport';
import { corkedWrite, isCluster, reconnectDelay, type RedisClient } from './connection';
import { RedisUnavailableError } from './errors';
import { bounded, within, type ConnectionHealth } from './health';
import { rpcListKeys } from './keys';
import { BATCH, BLOCK_SECONDS, CLOSE_STEP_MS } from './options';
import { copyInfo, HEARTBEAT_META, type RedisRegistry } from './registry';

/** One server this transport runs. */
interface Server {
  info: ServerInfo;
  handler: RpcHandler;
  keys: { type: string; server: string };
  open: boolean;
  running: number;
  /** Latest deadline among running calls (bounds a graceful close). */
  latestDeadline: number;
  blocking?: RedisClient;
  /** CLIENT ID of the blocking connection (standalone Redis), to CLIENT UNBLOCK it on close. */
  clientId?: number;
  loopDone?: Promise<void>;
  /** Wakes the loop from waiting for a free slot or from a backoff sleep. */
  wake?: () => void;
  /** Its blocking read is failing (it is left out of heartbeats). */
  failing: boolean;
  /** Resolves waiters when `running` drops to 0. */
  idle: Array<() => void>;
  stopping?: Promise<void>;
}

/** The counters of the consumer side (this transport's servers), since the transport was created. */
export interface ConsumerCounters {
  /** Requests this transport's servers started handling. */
  served: number;
  /** Requests this transport's servers took off a list after their deadline: dropped unrun. */
  expiredDropped: number;
  /** Handlers that threw or rejected. */
  handlerErrors: number;
  /** Requests still queued for a server of this transport when it closed, answered with code CLOSED. */
  closedRejected: number;
  /** Requests or replies that did not decode. */
  malformed: number;
}

/** What the consumer side needs of its transport. */
export interface ConsumerContext {
  command: RedisClient;
  prefix: string;
  registry: RedisRegistry;
  health: ConnectionHealth;
  logger: Logger;
  counters: ConsumerCounters;
  maxConcurrent: number;
  /** ms between heartbeats, registered as meta `heartbeat`. */
  heartbeatInterval: number;
  /** Resolves once the registry was read; rejects when the transport closes first. */
  ready(): Promise<void>;
  /** Resolves when the transport closes. */
  closed: Promise<void>;
  isClosed(): boolean;
  /** A new blocking connection, watched under `role`. */
  duplicate(role: string): RedisClient;
  /** Waits `ms`, or less when the transport closes or `wake` is called. */
  sleep(ms: number, onWake?: (wake: (() => void) | undefined) => void): Promise<void>;
}

const PACKAGE_VERSION = readVersion();

/** ARGV channel, then the replies: PUBLISH each (one message per reply, in order) to the channel. */
const PUBLISH_MANY = `for i = 2, #ARGV do redis.call('PUBLISH', ARGV[1], ARGV[i]) end
return #ARGV - 1`;

interface PublishScript {
  mqgateRpcPublishMany(channel: string, ...replies: Buffer[]): Promise<number>;
}

/** Most replies one command carries (keeps a command, and Redis's time in one script, small). */
const MAX_PUBLISH = 256;

/**
 * The consumer side of a RedisTransport: its own servers. Each has a blocking connection
 * taking requests off its lists (BLMPOP, or BLPOP + LPOP before Redis 7), at most
 * `maxConcurrent` running at once; it invokes the handler and publishes the reply, and on
 * stop deregisters, unblocks its read and answers what is left on its own list with CLOSED.
 */
export class Consumer {
  private readonly servers = new Map<string, Server>();
  /** Replies of this turn by reply channel, published together in setImmediate ({@link flushReplies}). */
  private replies = new Map<string, Buffer[]>();
  private repliesScheduled = false;
  private readonly flushRepliesNow = () => this.flushReplies();
  private readonly publishMany: PublishScript;

  constructor(private readonly ctx: ConsumerContext) {
    ctx.command.defineCommand('mqgateRpcPublishMany', { numberOfKeys: 0, lua: PUBLISH_MANY });
    this.publishMany = ctx.command as unknown as PublishScript;
  }

  /** Handlers running now, over all servers. */
  get running(): number {
    let running = 0;
    for (const s of this.servers.values()) running += s.running;
    return running;
  }

  /** See RedisTransport.serve (the transport checks it is open first). */
  async serve(info: ServerInfo, handler: RpcHandler): Promise<RpcServerHandle> {
    if (typeof info?.serverId !== 'string' || info.serverId === '') throw new TypeError('serve: serverId must be a non-empty string');
    if (typeof info.moduleType !== 'string' || info.moduleType === '' || /[{}]/.test(info.moduleType)) {
      throw new TypeError(`serve: moduleType must be a non-empty string without { or }: ${JSON.stringify(info.moduleType)}`);
    }
    if (this.servers.has(info.serverId)) throw new RpcError(`server id ${info.serverId} is already serving`, 'DUPLICATE_SERVER');
    const full: ServerInfo = {
      serverId: info.serverId,
      moduleType: info.moduleType,
      meta: {
        host: hostname(),
        pid: String(process.pid),
        version: PACKAGE_VERSION,
        startedAt: new Date().toISOString(),
        [HEARTBEAT_META]: String(this.ctx.heartbeatInterval),
        ...info.meta,
      },
    };
    const s: Server = {
      info: full,
      handler,
      keys: rpcListKeys(this.ctx.prefix, full.moduleType, full.serverId),
      open: true,
      running: 0,
      latestDeadline: 0,
      failing: false,
      idle: [],
    };
    this.servers.set(full.serverId, s);
    const { registry, health } = this.ctx;
    try {
      await Promise.race([this.ctx.ready(), this.ctx.closed]);
      if (!s.open || this.ctx.isClosed()) throw new TransportClosedError();
      let added: boolean;
      try {
        added = await registry.register(full);
        if (s.open) await registry.publishJoin(full);
      } catch (err) {
        throw new RedisUnavailableError(`serve ${full.serverId}: registering failed: ${messageOf(err)} (${health.describe()})`);
      }
      if (!s.open || this.ctx.isClosed()) throw new TransportClosedError();
      if (!added)
        this.ctx.logger.warn({ serverId: full.serverId }, 'server id was already registered (a restart within the registry TTL, or a duplicate id)');
      registry.noteLocalJoin(full);
      s.blocking = this.ctx.duplicate(`blocking ${full.serverId}`);
      s.loopDone = this.loop(s);
    } catch (err) {
      s.open = false;
      if (this.servers.get(full.serverId) === s) this.servers.delete(full.serverId);
      throw err;
    }
    return { info: copyInfo(full), close: () => this.stop(s, true) };
  }

  /** The serverIds to name in a heartbeat: open servers whose blocking read is not failing. */
  beating(): string[] {
    const ids: string[] = [];
    for (const s of this.servers.values()) if (s.open && !s.failing && s.loopDone) ids.push(s.info.serverId);
    return ids;
  }

  /** Refreshes every open server's registry entry (announcing it again when it was lost). */
  async refreshAll(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => this.refresh(s)));
  }

  /** Stops every server without waiting for running handlers (close). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => this.stop(s, false)));
  }

  private async refresh(s: Server): Promise<void> {
    if (!s.open) return;
    const added = await this.ctx.registry.register(s.info);
    if (!s.open) return;
    this.ctx.registry.noteLocalJoin(s.info);
    if (added) await this.ctx.registry.publishJoin(s.info);
  }

  /** Takes requests off the server's lists while it is open. Never rejects. */
  private async loop(s: Server): Promise<void> {
    const blocking = s.blocking as RedisClient;
    const unblockable = !isCluster(blocking);
    let useBlmpop = true;
    let failures = 0;
    let needId = unblockable;
    const role = `blocking ${s.info.serverId}`;
    while (s.open) {
      if (s.running >= this.ctx.maxConcurrent) {
        await new Promise<void>((resolve) => (s.wake = resolve));
        s.wake = undefined;
        continue;
      }
      const room = Math.min(BATCH, this.ctx.maxConcurrent - s.running);
      let items: Buffer[] | null;
      try {
        if (needId) {
          s.clientId = await (blocking as Redis).client('ID');
          needId = false;
          if (!s.open) break;
        }
        items = useBlmpop ? await blmpop(blocking, s, room) : await blpop(blocking, s, room);
        if (failures > 0) this.ctx.health.recovered(role);
        failures = 0;
        s.failing = false;
      } catch (err) {
        if (!s.open) break;
        if (useBlmpop && /unknown command/i.test(messageOf(err))) {
          useBlmpop = false; // Redis < 7
          continue;
        }
        failures++;
        s.failing = true;
        needId = unblockable;
        this.ctx.health.noteFailure(role, err);
        await this.ctx.sleep(reconnectDelay(failures), (wake) => (s.wake = wake));
        continue;
      }
      if (items) for (const item of items) this.accept(s, item);
    }
  }

  /** Runs one popped request (or drops it when its deadline has passed). */
  private accept(s: Server, bytes: Buffer): void {
    let req: RpcRequest;
    try {
      req = decodeRequest(bytes);
    } catch (err) {
      this.ctx.counters.malformed++;
      if (err instanceof RequestArgsError && err.request.replyTo) {
        this.reply(err.request.replyTo, err.request.id, { code: 'DECODE', message: err.message });
      }
      return;
    }
    if (Date.now() >= req.deadline) {
      this.ctx.counters.expiredDropped++;
      return;
    }
    this.ctx.counters.served++;
    s.running++;
    if (req.deadline > s.latestDeadline) s.latestDeadline = req.deadline;
    void this.invoke(s, req);
  }

  private async invoke(s: Server, req: RpcRequest): Promise<void> {
    let result: RpcValue | void = null;
    let error: unknown;
    let failed = false;
    try {
      result = await s.handler(req.fn, req.args, { fn: req.fn, deadline: req.deadline });
    } catch (err) {
      failed = true;
      error = err;
      this.ctx.counters.handlerErrors++;
    }
    s.running--;
    s.wake?.();
    if (s.running === 0) for (const resolve of s.idle.splice(0)) resolve();
    if (!req.replyTo) return;
    if (failed) this.reply(req.replyTo, req.id, toWireError(error));
    else this.reply(req.replyTo, req.id, undefined, result === undefined ? null : result);
  }

  /**
   * Queues a reply for this turn: the replies of one turn to one channel go in one command
   * (a PUBLISH each, in a script), the commands of the turn in one socket write.
   */
  private reply(channel: string, id: number, error: { code: string; message: string } | undefined, result?: RpcValue): void {
    if (this.ctx.command.status === 'end') return;
    const bytes = encodeResponse({ id, error, result });
    let queued = this.replies.get(channel);
    if (!queued) {
      queued = [];
      this.replies.set(channel, queued);
    }
    queued.push(bytes);
    if (queued.length >= MAX_PUBLISH) {
      this.replies.delete(channel);
      this.publish(channel, queued);
    }
    if (!this.repliesScheduled) {
      this.repliesScheduled = true;
      setImmediate(this.flushRepliesNow);
    }
  }

  /** Publishes the replies of this turn, in one socket write. A failed publish is dropped: the caller fails at its deadline. */
  private flushReplies(): void {
    this.repliesScheduled = false;
    if (this.replies.size === 0) return;
    const replies = this.replies;
    this.replies = new Map();
    if (this.ctx.command.status === 'end') return;
    corkedWrite(this.ctx.command, () => {
      for (const [channel, queued] of replies) this.publish(channel, queued);
    });
  }

  private publish(channel: string, replies: Buffer[]): void {
    const done = replies.length === 1 ? this.ctx.command.publish(channel, replies[0]) : this.publishMany.mqgateRpcPublishMany(channel, ...replies);
    done.catch(() => undefined);
  }

  /**
   * Graceful stop of one server: deregister (leave event), stop its blocking read, answer
   * requests left on its own list with CLOSED, then (when `waitRunning`) wait for running
   * handlers, at most until the latest deadline among them.
   */
  private stop(s: Server, waitRunning: boolean): Promise<void> {
    if (!s.stopping) {
      s.stopping = (async () => {
        s.open = false;
        if (this.servers.get(s.info.serverId) === s) this.servers.delete(s.info.serverId);
        this.ctx.registry.noteLocalLeave(s.info.serverId);
        await bounded(this.ctx.registry.deregister(s.info), CLOSE_STEP_MS);
        await this.stopLoop(s);
        await bounded(this.drainOwn(s), CLOSE_STEP_MS);
        this.ctx.health.forget(`blocking ${s.info.serverId}`);
        if (waitRunning && s.running > 0) {
          const idle = new Promise<void>((resolve) => s.idle.push(resolve));
          await bounded(idle, Math.max(0, s.latestDeadline - Date.now()) + 100);
        }
      })().catch(() => undefined);
    }
    return s.stopping;
  }

  /** Ends the loop: CLIENT UNBLOCK its blocked read (nothing popped is lost), else disconnect. */
  private async stopLoop(s: Server): Promise<void> {
    s.wake?.();
    const blocking = s.blocking;
    if (!blocking || !s.loopDone) return;
    const done = s.loopDone.then(() => true);
    const command = this.ctx.command;
    if (!isCluster(command) && command.status === 'ready') {
      const until = Date.now() + CLOSE_STEP_MS;
      while (Date.now() < until) {
        if (s.clientId !== undefined) await bounded(command.client('UNBLOCK', s.clientId), 200);
        if (await within(done, 25)) break;
      }
    }
    blocking.disconnect();
    await s.loopDone;
  }

  /** Answers requests still queued on the server's own list with TransportClosedError (code CLOSED). */
  private async drainOwn(s: Server): Promise<void> {
    const command = this.ctx.command;
    if (command.status !== 'ready') return;
    for (let round = 0; round < 100; round++) {
      const items = await command.lpopBuffer(s.keys.server, BATCH);
      if (!items || items.length === 0) return;
      const closed = toWireError(new TransportClosedError(`server ${s.info.serverId}`));
      for (const bytes of items) {
        try {
          const req = decodeRequest(bytes);
          this.ctx.counters.closedRejected++;
          if (req.replyTo && req.deadline >= Date.now()) this.reply(req.replyTo, req.id, closed);
        } catch {
          this.ctx.counters.malformed++;
        }
      }
    }
  }
}

async function blmpop(blocking: RedisClient, s: Server, room: number): Promise<Buffer[] | null> {
  const reply = await blocking.blmpopBuffer(BLOCK_SECONDS, 2, s.keys.server, s.keys.type, 'LEFT', 'COUNT', room);
  return reply ? reply[1] : null;
}

/** Redis < 7: BLPOP one, then LPOP up to `room - 1` more from the same list. */
async function blpop(blocking: RedisClient, s: Server, room: number): Promise<Buffer[] | null> {
  const reply = await blocking.blpopBuffer(s.keys.server, s.keys.type, BLOCK_SECONDS);
  if (!reply) return null;
  const items = [reply[1]];
  if (room > 1) {
    const more = await blocking.lpopBuffer(reply[0], room - 1).catch(() => null);
    if (more) items.push(...more);
  }
  return items;
}

/** This package's version (registered as meta `version`), or `unknown`. */
function readVersion(): string {
  try {
    return String((JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}
