import type { ServerInfo } from '@mqgate/rpc';

/** A registry event on `<prefix>.reg.ev` (JSON), or a server's answer to discovery. */
export interface RegistryEvent {
  op: 'join' | 'hb' | 'busy' | 'free' | 'leave';
  info: ServerInfo;
  /** The server has left its type's queue group (at maxConcurrent). */
  busy?: boolean;
}

/** Called when a server enters or leaves the cache, and when a busy server of a type frees up. */
export interface RegistryListener {
  joined(info: ServerInfo): void;
  left(info: ServerInfo): void;
  freed(moduleType: string): void;
  /** A server was found dead (no heartbeat within the TTL, or no subscriber on its subject): `why` says how. */
  lost(info: ServerInfo, why: string): void;
}

interface Entry {
  info: ServerInfo;
  /** epoch ms after which an entry without a heartbeat is dropped; Infinity for this transport's own. */
  expires: number;
  busy: boolean;
}

/**
 * The live servers as one NatsTransport sees them: filled by registry events and discovery
 * answers, emptied by leave events and by expiry (`ttl` ms without a heartbeat: a crashed
 * server), and by {@link lose} when NATS answers "no responders" for a server's own subject.
 * Reads are synchronous, so routing never waits on the network.
 */
export class NatsRegistry {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttl: number,
    private readonly listener: RegistryListener,
  ) {}

  /** Applies an event; `local` marks a server of this transport (never expires). */
  apply(ev: RegistryEvent, local = false): void {
    const id = ev.info?.serverId;
    if (typeof id !== 'string' || typeof ev.info.moduleType !== 'string') return;
    if (ev.op === 'leave') return this.drop(id);
    const had = this.entries.get(id);
    const busy = ev.op === 'busy' || (ev.op !== 'free' && ev.busy === true);
    const expires = local || had?.expires === Infinity ? Infinity : Date.now() + this.ttl;
    this.entries.set(id, { info: copy(ev.info), expires, busy });
    if (!had) this.listener.joined(copy(ev.info));
    else if (had.busy && !busy) this.listener.freed(ev.info.moduleType);
  }

  /** Removes a server (leave event, a clean local stop, or no responders on its subject). */
  drop(serverId: string): void {
    const had = this.entries.get(serverId);
    if (!had) return;
    this.entries.delete(serverId);
    this.listener.left(copy(had.info));
    if (had.busy) this.listener.freed(had.info.moduleType);
  }

  /** Drops a server found dead (`why` says how), then tells the listener (`lost`): its calls in flight fail. */
  lose(serverId: string, why: string): void {
    const had = this.entries.get(serverId);
    if (!had || had.expires === Infinity) return;
    this.drop(serverId);
    this.listener.lost(copy(had.info), why);
  }

  /** Drops entries whose heartbeats stopped more than `ttl` ms ago (as {@link lose}). */
  prune(now = Date.now()): void {
    for (const [id, e] of this.entries) if (e.expires < now) this.lose(id, `stopped answering (no heartbeat for ${this.ttl} ms)`);
  }

  /** True for a server of this transport (never expires, never probed). */
  isLocal(serverId: string): boolean {
    return this.entries.get(serverId)?.expires === Infinity;
  }

  /** Live servers of `moduleType`, or all, sorted by serverId (copies). */
  list(moduleType?: string): ServerInfo[] {
    const out: ServerInfo[] = [];
    for (const e of this.entries.values()) if (moduleType === undefined || e.info.moduleType === moduleType) out.push(copy(e.info));
    return out.sort((a, b) => (a.serverId < b.serverId ? -1 : a.serverId > b.serverId ? 1 : 0));
  }

  has(serverId: string): boolean {
    return this.entries.has(serverId);
  }

  /** Whether a server of `moduleType` is listed; the info of a listed serverId. */
  get(serverId: string): ServerInfo | undefined {
    const e = this.entries.get(serverId);
    return e && copy(e.info);
  }

  hasType(moduleType: string): boolean {
    for (const e of this.entries.values()) if (e.info.moduleType === moduleType) return true;
    return false;
  }

  /** True when a listed server of `moduleType` has left its queue group because it is busy. */
  anyBusy(moduleType: string): boolean {
    for (const e of this.entries.values()) if (e.busy && e.info.moduleType === moduleType) return true;
    return false;
  }
}

function copy(info: ServerInfo): ServerInfo {
  return info.meta
    ? { serverId: info.serverId, moduleType: info.moduleType, meta: { ...info.meta } }
    : { serverId: info.serverId, moduleType: info.moduleType };
}
