import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  DeadlineError,
  FunctionNotFoundError,
  NoServerError,
  type Address,
  type CallOptions,
  type RpcHandler,
  type RpcServerHandle,
  type RpcTransport,
  type RpcValue,
  type ServerInfo,
  type SessionCounts,
} from '@mqgate/rpc';
import type { StorageHandler } from '@mqgate/storage';
import type { Traffic } from '../protocol/traffic';
import { parseTopic } from '../routing/topic';

export type { Traffic } from '../protocol/traffic';

/** What the metrics read of the gate at scrape time. */
export interface GateView {
  connections(): Iterable<{ wire: { network: string }; protocolVersion: number; state: number }>;
  counts(): SessionCounts;
  /** Bytes held for clients across connections (unsent output, QoS 1 pushes not acknowledged) (the output budget's total; 0 when it is off). */
  bufferedBytes?(): number;
}

/** Why connections close, as a bounded label (matched on the close reason's text). */
const CLOSE_REASONS: [RegExp, string][] = [
  [/^client disconnect/, 'client_disconnect'],
  [/^connection lost/, 'network'],
  [/keepalive timeout/, 'keepalive'],
  [/no CONNECT within/, 'connect_timeout'],
  [/exceeds maxPacketSize|exceeds the connection's input bound/, 'too_large'],
  [/^malformed/, 'malformed'],
  [/^slow consumer/, 'slow_consumer'],
  [/taken over/, 'takeover'],
  [/server shutting down|gate is stopping/, 'shutdown'],
  [/^kicked|^closed by server/, 'kick'],
  [/^(maxConnections|connectRate|maxTrackedIps)/, 'limit'],
  [/^banned/, 'banned'],
];

/** The `reason` label of a close reason. Anything unlisted (protocol violations) is `protocol_error`. */
export function closeReasonLabel(reason: string): string {
  for (const [re, label] of CLOSE_REASONS) if (re.test(reason)) return label;
  return 'protocol_error';
}

/** Label values limited to `cap` distinct ones; later ones read `other`. */
export class LabelCap {
  private readonly seen = new Set<string>();
  constructor(private readonly cap: number) {}
  fold(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.cap) return 'other';
    this.seen.add(value);
    return value;
  }
}

/** Request outcome label of a transport call's rejection. */
export function outcomeOf(err: unknown): 'handler_error' | 'routing_error' | 'deadline' {
  if (err instanceof DeadlineError) return 'deadline';
  if (err instanceof NoServerError || err instanceof FunctionNotFoundError) return 'routing_error';
  return 'handler_error';
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The gate's Prometheus metrics, every name prefixed `mqgate_`, in one registry per gate
 * (with prom-client's default process metrics: event-loop lag, heap, GC). No label holds a
 * user, session or message id; module and handler names are capped (`handlerCap` each,
 * then `other`). Served by ops/server.ts.
 */
export class GateMetrics {
  readonly registry = new Registry();
  readonly traffic: Traffic = { bytesIn: 0, bytesOut: 0, sent: 0, dropped: 0, pauses: 0, ratePauses: 0, packetsIn: {} };
  /** False from a failed StorageHandler call until the next one that succeeds. */
  storageOk = true;
  /** Detached sessions dropped at the gate option maxDetached: `mqgate_detached_dropped_total`. */
  detachedDropped = 0;
  private readonly modules: LabelCap;
  private readonly handlers = new Map<string, LabelCap>();
  private readonly accepted: Counter;
  private readonly refused: Counter<'code'>;
  private readonly admissionRefused: Counter<'reason'>;
  private readonly closed: Counter<'reason'>;
  private readonly requests: Counter<'module' | 'handler' | 'outcome'>;
  private readonly latency: Histogram<'module'>;
  private readonly transportCalls: Counter<'outcome'>;
  private readonly transportLatency: Histogram;
  private readonly storageCalls: Counter<'method' | 'outcome'>;
  private readonly storageLatency: Histogram<'method'>;
  private readonly pushesDropped: Counter<'reason'>;

  constructor(
    view: GateView,
    private readonly handlerCap: number,
  ) {
    const registers = [this.registry];
    const t = this.traffic;
    this.modules = new LabelCap(handlerCap);
    collectDefaultMetrics({ register: this.registry, prefix: 'mqgate_' });
    new Gauge({
      name: 'mqgate_connections_open',
      help: 'Open client connections by network and MQTT protocol version (0: CONNECT not yet accepted)',
      labelNames: ['network', 'protocol'],
      registers,
      collect() {
        this.reset();
        for (const c of view.connections()) this.inc({ network: c.wire.network, protocol: c.state === 2 ? c.protocolVersion : 0 });
      },
    });
    const counts = (help: string, key: keyof SessionCounts, name: string) =>
      new Gauge({
        name,
        help,
        registers,
        collect: function () {
          this.set(view.counts()[key] ?? 0);
        },
      });
    counts('Sessions connected', 'total', 'mqgate_sessions');
    counts('Sessions bound to a user', 'bound', 'mqgate_sessions_bound');
    counts('Sessions not bound to a user', 'guests', 'mqgate_sessions_guests');
    counts('Bound sessions detached, kept for a resume', 'detached', 'mqgate_sessions_detached');
    this.accepted = new Counter({ name: 'mqgate_connections_accepted_total', help: 'CONNECTs accepted (CONNACK 0)', registers });
    this.refused = new Counter({
      name: 'mqgate_connections_refused_total',
      help: 'CONNECTs refused, by CONNACK return code',
      labelNames: ['code'],
      registers,
    });
    this.admissionRefused = new Counter({
      name: 'mqgate_admission_refused_total',
      help: 'Connections refused at the door by reason: maxConnections, maxConnectionsPerIp, connectRate, maxTrackedIps, bannedIp (closed before CONNECT is read); bannedClientId, flapping, bannedUserId (CONNACK 0x8A / 5, or Bind refused), flappingInFlight (CONNACK 0x9F / 3)',
      labelNames: ['reason'],
      registers,
    });
    this.closed = new Counter({ name: 'mqgate_connections_closed_total', help: 'Connections closed, by reason', labelNames: ['reason'], registers });
    this.requests = new Counter({
      name: 'mqgate_requests_total',
      help: 'Client requests and notifies routed, by module, handler and outcome (ok, handler_error, routing_error, deadline)',
      labelNames: ['module', 'handler', 'outcome'],
      registers,
    });
    this.latency = new Histogram({
      name: 'mqgate_request_duration_seconds',
      help: 'Time from routing a request to its reply, seconds',
      labelNames: ['module'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.transportCalls = new Counter({
      name: 'mqgate_transport_calls_total',
      help: 'Transport calls made for client requests, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    this.transportLatency = new Histogram({
      name: 'mqgate_transport_call_duration_seconds',
      help: 'Transport call latency, seconds',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.storageCalls = new Counter({
      name: 'mqgate_storage_calls_total',
      help: 'StorageHandler calls, by method and outcome (ok, error)',
      labelNames: ['method', 'outcome'],
      registers,
    });
    this.storageLatency = new Histogram({
      name: 'mqgate_storage_call_duration_seconds',
      help: 'StorageHandler call latency, seconds',
      labelNames: ['method'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const fromTraffic = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect: function () {
          this.reset();
          this.inc(read());
        },
      });
    this.pushesDropped = new Counter({
      name: 'mqgate_pushes_dropped_total',
      help: 'Replies and pushes not sent, by reason: too_large (over maxPacketSize or the MQTT 5 client Maximum Packet Size), memory (to a slow consumer while over maxBufferedBytesTotal)',
      labelNames: ['reason'],
      registers,
    });
    new Gauge({
      name: 'mqgate_output_buffered_bytes',
      help: 'Bytes held for clients across connections (unsent output, QoS 1 pushes not acknowledged), as the maxBufferedBytesTotal bound counts them (0 when off)',
      registers,
      collect() {
        this.set(view.bufferedBytes?.() ?? 0);
      },
    });
    fromTraffic('mqgate_received_bytes_total', 'Bytes received from clients', () => t.bytesIn);
    fromTraffic('mqgate_sent_bytes_total', 'Bytes written to clients', () => t.bytesOut);
    fromTraffic('mqgate_messages_sent_total', 'PUBLISH packets written to clients (replies and pushes)', () => t.sent);
    fromTraffic('mqgate_messages_dropped_total', 'PUBLISH packets to clients dropped (not connected, slow consumer)', () => t.dropped);
    new Counter({
      name: 'mqgate_read_pauses_total',
      help: 'Times a connection stopped reading, by reason: backpressure (maxInflight requests running, unsent output, a stop) or rate (messageRate / byteRate)',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        this.inc({ reason: 'backpressure' }, t.pauses);
        this.inc({ reason: 'rate' }, t.ratePauses);
      },
    });
    fromTraffic(
      'mqgate_detached_dropped_total',
      'Detached sessions dropped before their window ended, the gate holding maxDetached',
      () => this.detachedDropped,
    );
    new Counter({
      name: 'mqgate_packets_received_total',
      help: 'MQTT packets received, by type',
      labelNames: ['type'],
      registers,
      collect() {
        this.reset();
        for (const [type, n] of Object.entries(t.packetsIn)) this.inc({ type }, n);
      },
    });
  }

  /** A reply or push not sent (see ProtocolHooks.dropped). */
  pushDropped(reason: 'too_large' | 'memory'): void {
    this.pushesDropped.inc({ reason });
  }

  /** A CONNACK 0 was sent (the gate's `connect` event). */
  connected(): void {
    this.accepted.inc();
  }

  /**
   * A connection closed with this reason (every close, refused CONNECTs included).
   * `refusedCode`: the code of the refusing CONNACK, when there was one (a 3.1/3.1.1 return
   * code, labelled `5`; an MQTT 5 reason code, labelled `0x87`).
   */
  connectionClosed(reason: string, refusedCode?: { code: number; v5: boolean }): void {
    if (refusedCode) {
      this.refused.inc({ code: refusedCode.v5 ? `0x${refusedCode.code.toString(16)}` : String(refusedCode.code) });
      this.closed.inc({ reason: 'refused' });
      return;
    }
    this.closed.inc({ reason: closeReasonLabel(reason) });
  }

  /** A connection, CONNECT or Bind refused by admission (admission/tables.ts); `reason` is one of a fixed set. */
  refusedAtDoor(reason: string): void {
    this.admissionRefused.inc({ reason });
  }

  /** A client PUBLISH whose topic cannot be routed (counted before the router answers it). */
  topicSeen(topic: string): void {
    if (typeof parseTopic(topic) === 'string') this.requests.inc({ module: '', handler: '', outcome: 'routing_error' });
  }

  private labels(to: Address, fn: string): { module: string; handler: string } {
    const raw = to.moduleType ?? (to.serverId ?? '').split('@')[0];
    const module = this.modules.fold(raw);
    let caps = this.handlers.get(module);
    if (!caps) this.handlers.set(module, (caps = new LabelCap(this.handlerCap)));
    return { module, handler: caps.fold(fn) };
  }

  /** The transport as the router uses it: every `call` counted and timed. */
  observeTransport(transport: RpcTransport): RpcTransport {
    return new ObservedTransport(transport, async (to, fn, run) => {
      const { module, handler } = this.labels(to, fn);
      const end = this.latency.startTimer({ module });
      const endCall = this.transportLatency.startTimer();
      try {
        const result = await run();
        this.requests.inc({ module, handler, outcome: 'ok' });
        this.transportCalls.inc({ outcome: 'ok' });
        return result;
      } catch (err) {
        const outcome = outcomeOf(err);
        this.requests.inc({ module, handler, outcome });
        this.transportCalls.inc({ outcome: outcome === 'handler_error' ? 'ok' : outcome });
        throw err;
      } finally {
        end();
        endCall();
      }
    });
  }

  /** The StorageHandler with every call counted and timed; a failure marks storage unreachable until a call succeeds. */
  observeStorage(storage: StorageHandler): StorageHandler {
    const timed =
      <A extends unknown[], R>(method: string, f: (...a: A) => Promise<R>) =>
      async (...a: A): Promise<R> => {
        const end = this.storageLatency.startTimer({ method });
        try {
          const r = await f(...a);
          this.storageCalls.inc({ method, outcome: 'ok' });
          this.storageOk = true;
          return r;
        } catch (err) {
          this.storageCalls.inc({ method, outcome: 'error' });
          this.storageOk = false;
          throw err;
        } finally {
          end();
        }
      };
    return {
      storage: timed('storage', (s) => storage.storage(s)),
      delete: timed('delete', (s) => storage.delete(s)),
      query: timed('query', (u) => storage.query(u)),
      heartbeat: timed('heartbeat', (s) => storage.heartbeat(s)),
    };
  }
}

type Timed = (to: Address, fn: string, run: () => Promise<RpcValue>) => Promise<RpcValue>;

/** A transport whose `call` goes through `timed`; everything else is the transport's own. */
class ObservedTransport implements RpcTransport {
  constructor(
    private readonly inner: RpcTransport,
    private readonly timed: Timed,
  ) {}
  get defaultTimeout(): number {
    return this.inner.defaultTimeout;
  }
  call(to: Address, fn: string, args: RpcValue[], opts?: CallOptions): Promise<RpcValue> {
    return this.timed(to, fn, () => this.inner.call(to, fn, args, opts));
  }
  serve(info: ServerInfo, handler: RpcHandler): Promise<RpcServerHandle> {
    return this.inner.serve(info, handler);
  }
  callNR(to: Address, fn: string, args: RpcValue[]): Promise<void> {
    return this.inner.callNR(to, fn, args);
  }
  servers(moduleType?: string): ServerInfo[] {
    return this.inner.servers(moduleType);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
