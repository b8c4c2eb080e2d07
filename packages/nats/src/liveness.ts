import { headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import type { NatsRegistry } from './registry';
import { PROBE_HEADER, type Subjects } from './subjects';

/** What a {@link LivenessProbe} works with. */
export interface LivenessContext {
  nc: () => NatsConnection | undefined;
  subjects: Subjects;
  registry: NatsRegistry;
  /** Prefix of this transport's reply subjects; probes answer on `<replyPrefix>.p<n>`. */
  replyPrefix: string;
  /** The serverIds that hold (or may hold) a call in flight sent at or before `sentBefore` (epoch ms). */
  targets(sentBefore: number): Iterable<string>;
}

/** What the probe says when a server's subject has no subscriber. */
export const PROBE_GONE = 'is gone (NATS has no subscriber for its subject: the process died or lost its connection)';

/**
 * Notices a module process that died with calls in flight (SIGKILL, a crash): every `interval`
 * ms, each server that holds a call sent more than `interval` ms ago gets an empty probe on
 * its own subject (`<prefix>.rpc.srv.<serverId>`, header {@link PROBE_HEADER}, which servers
 * ignore) with a reply subject. A live server's subscription swallows it (no reply, no work);
 * the subscription of a dead process is gone as soon as the NATS server sees its socket close,
 * and NATS answers no responders (503) at once: the server is then dropped from the registry
 * and its calls in flight fail (NatsRegistry.lose). Short calls never cost a probe; a call to
 * a type probes every listed server of the type. Not probed: this transport's own servers.
 */
export class LivenessProbe {
  private seq = 0;
  /** Probe number → serverId, for the probes of this round and the one before. */
  private readonly outstanding = new Map<number, string>();
  private roundStart = 0;
  private lastRoundStart = 0;

  constructor(
    private readonly ctx: LivenessContext,
    private readonly interval: number,
  ) {}

  /** One round: probes the servers holding calls older than `interval` ms. */
  tick(now = Date.now()): void {
    for (const n of this.outstanding.keys()) if (n <= this.lastRoundStart) this.outstanding.delete(n);
    this.lastRoundStart = this.roundStart;
    this.roundStart = this.seq;
    const nc = this.ctx.nc();
    if (!nc || nc.isClosed()) return;
    const ids = new Set(this.ctx.targets(now - this.interval));
    for (const id of ids) {
      if (this.ctx.registry.isLocal(id) || !this.ctx.registry.has(id)) continue;
      const n = ++this.seq;
      const h = headers();
      h.set(PROBE_HEADER, '1');
      try {
        nc.publish(this.ctx.subjects.server(id), undefined, { reply: `${this.ctx.replyPrefix}.p${n}`, headers: h });
        this.outstanding.set(n, id);
      } catch {
        return; // the connection just dropped: the transport fails the calls itself
      }
    }
  }

  /** A message on `<replyPrefix>.p<n>`: a 503 means the probed server is gone. */
  onReply(tail: string, m: Msg): void {
    const n = Number(tail.slice(1));
    const id = this.outstanding.get(n);
    if (id === undefined) return;
    this.outstanding.delete(n);
    if (m.headers?.code === 503) this.ctx.registry.lose(id, PROBE_GONE);
  }
}

/** True for a reply-subject tail that names a probe (`p<n>`), not a call (`<n>`). */
export function isProbeReply(tail: string): boolean {
  return tail.charCodeAt(0) === 0x70; // 'p'
}
