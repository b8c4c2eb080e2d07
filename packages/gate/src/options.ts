import { randomBytes } from 'node:crypto';
import { getHeapStatistics } from 'node:v8';
import { readFileSync } from 'node:fs';
import type { DuplicateLoginPolicy, Logger, UserIndex, UserProperties } from '@mqgate/rpc';
import type { StorageHandler } from '@mqgate/storage';
import type { TlsListenOptions } from './wire/tls';
import type { ClientCertificate } from './wire/wire';

export type { TlsListenOptions, PemSource } from './wire/tls';
export type { ClientCertificate } from './wire/wire';
import { resolveJwtOptions, type JwtClaims, type JwtOptions, type ResolvedJwtOptions } from './jwt';
import type { RateLimit } from './protocol/rate-limit';

export type { RateLimit } from './protocol/rate-limit';

/** What the authenticate hook sees of a CONNECT (MQTT-3.1.3). */
export interface ConnectInfo {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  /** Client address (no port); see `trustedProxies`. */
  remoteAddress: string;
  network: 'tcp' | 'websocket';
  /** 3 (MQTT 3.1), 4 (3.1.1) or 5. */
  protocolVersion: number;
  /** MQTT 5: the CONNECT's User Properties (MQTT 5.0 §3.1.2.11.8); undefined when none or before MQTT 5. */
  userProperties?: UserProperties;
  /**
   * MQTT 5: the CONNECT's Authentication Method (§3.1.2.11.9). The gate has no AUTH
   * exchange: a CONNECT with a method is refused with 0x8C (Bad authentication method)
   * unless this hook returns `true` (e.g. a token scheme checked in one step with
   * `authenticationData`).
   */
  authenticationMethod?: string;
  /** MQTT 5: the CONNECT's Authentication Data (§3.1.2.11.10). */
  authenticationData?: Buffer;
  /** True on the TLS listeners (`mqtts`, `wss`). */
  secure: boolean;
  /** The client certificate, when the listener has `requestCert` and the certificate was verified. */
  certificate: ClientCertificate | undefined;
  /** With the gate option `jwt`: the verified token's claims (the hook runs after verification). */
  jwt?: JwtClaims;
}

/**
 * The authenticate hook's answer: `true` accepts; `false` refuses with CONNACK return
 * code 5 / MQTT 5 reason code 0x87 (not authorized), or 0x8C (bad authentication method)
 * when the CONNECT named an Authentication Method; `{ returnCode: 4 }` refuses with 4 / 0x86
 * (bad user name or password). `{ reasonCode, reasonString? }` refuses with any MQTT 5
 * CONNACK reason code ≥ 0x80 (MQTT 5.0 §3.2.2.2) and a Reason String an MQTT 5 client sees;
 * a 3.1 / 3.1.1 client gets 4 for 0x86, 3 for 0x88 / 0x89, else 5.
 * A hook that throws or rejects refuses with 3 / 0x88 (server unavailable).
 *
 * `{ userId }` accepts and names the client's user (it does not bind: a module's Bind does).
 * It lets a CONNECT with Clean Session 0 (3.1.1) / Clean Start 0 (5) resume the detached
 * session of that user with the same client id (CONNACK Session Present 1, issue 10
 * rule 6; MQTT-3.2.2-2, MQTT 5.0 §3.2.2.1.1), and a CONNECT with Clean Session 1 /
 * Clean Start 1 discard it (MQTT-3.1.2-6). With the gate option `jwt` the token names the
 * user instead, and this field is ignored. An empty `userId` is the same as `true`.
 */
export type AuthenticateResult = boolean | { returnCode: 4 | 5 } | { reasonCode: number; reasonString?: string } | { userId: string };

export interface ListenOptions {
  /** TCP port; 0 picks a free one (see `Gate.addresses()`). */
  port: number;
  /** Interface to bind. Default: all interfaces. */
  host?: string;
}

/** The TCP listener: a {@link ListenOptions} that may expect a PROXY protocol header. */
export interface TcpListenOptions extends ListenOptions {
  /**
   * Read a PROXY protocol v1 or v2 header (HAProxy, AWS NLB, nginx stream) before MQTT: the
   * session's address is the one the header names. Believed only from `trustedProxies`; a
   * header from any other peer closes the connection; a connection without one is taken
   * as is. Default false.
   */
  proxyProtocol?: boolean;
}

/** Gate options. Every field is optional; defaults are in {@link DEFAULTS}. */
export interface GateOptions {
  /** Node id of this gate; the `serverId` of its sessions. Default `gate@<16 random hex>` (mqant's form). */
  serverId?: string;
  /** MQTT over TCP listener, or `false` for none. Default `{ port: 3563 }` (mqant's convention). */
  tcp?: TcpListenOptions | false;
  /** MQTT over WebSocket listener (any path), or `false` for none. Default `{ port: 3653 }`. */
  websocket?: ListenOptions | false;
  /** ms a new connection has to send CONNECT before it is closed (MQTT-3.1.0-1 guard). Default 10 000 (mqant's OverTime). */
  connectTimeout?: number;
  /** ms of silence after which a client that asked for keepalive 0 is closed. Default 60 000. */
  maxIdle?: number;
  /**
   * Largest keepalive a CONNECT may ask for, seconds. MQTT 5: a larger one is lowered to this
   * and stated as Server Keep Alive in the CONNACK (MQTT-3.2.2-21); 3.1 / 3.1.1 cannot be told
   * another keepalive, so a larger one gets CONNACK return code 2 (Mosquitto's max_keepalive
   * does the same). 0 = any (up to 65 535 s, 18 h: a dead client holds its socket 27 h).
   * Default 1200 (20 min; EMQX's and AWS IoT's caps are of that order): a half-open socket of
   * a client gone without FIN is reclaimed within 30 min.
   */
  maxKeepalive?: number;
  /**
   * Largest packet accepted, bytes, whole packet with header. Larger closes the connection before it is buffered.
   * Also the largest the gate sends: a reply above it becomes an Error envelope reply, a push above it is dropped and counted. Default 65 536.
   */
  maxPacketSize?: number;
  /**
   * Unsent bytes a connection may hold (replies and pushes to a client that does not read);
   * past it the connection is closed as a slow consumer. Default 4 194 304 (4 MiB).
   */
  maxBufferedBytes?: number;
  /**
   * Open connections (CONNECT pending included) beyond which a new one is closed at accept,
   * before its CONNECT is read (counted in `mqgate_admission_refused_total{reason="maxConnections"}`).
   * 0 = no cap. Default `'auto'`: the process's open-files soft limit L (Linux: `/proc/self/limits`
   * "Max open files", which Node has already raised to the hard limit; elsewhere or unreadable:
   * 10 000) minus a reserve of max(64, L / 10) descriptors for the transport, storage and
   * metrics sockets, listeners and files: an accept loop hitting EMFILE stops serving everyone,
   * a cap below it refuses only the newcomer (see {@link autoMaxConnections}).
   */
  maxConnections?: number | 'auto';
  /**
   * Open connections per client address (see `trustedProxies`) beyond which a new one is closed
   * at accept. 0 = no cap. Default 1000: one host cannot take the gate's every descriptor, yet a
   * carrier-grade NAT (RFC 6888: a public address shared by hundreds of subscribers) is not cut.
   */
  maxConnectionsPerIp?: number;
  /** Requests running at once per connection; at the limit the gate stops reading that socket. Default 20 (mqant's ConcurrentTasks). */
  maxInflight?: number;
  /** Run one request at a time per session, in arrival order. Default false (mqant runs them concurrently). */
  ordered?: boolean;
  /** ms a module handler has before the client gets a deadline Error reply. Default 10 000 (mqant's RPCExpired). */
  handlerTimeout?: number;
  /**
   * QoS 2 packet identifiers held between PUBREC and PUBREL per connection; one more closes the connection. Default 100.
   * MQTT 5 clients are held to the Receive Maximum the gate states instead (maxInflight, when lower):
   * one more is DISCONNECT 0x93 (MQTT-3.3.4-9).
   */
  maxQos2Pending?: number;
  /**
   * MQTT 5 inbound Topic Aliases a client may set (Topic Alias Maximum in CONNACK, MQTT 5.0
   * §3.2.2.3.8), 0..65 535; an alias of 0, above it, or unknown is DISCONNECT 0x94. 0 = none.
   * Each alias holds one topic (at most maxPacketSize bytes). Default 16.
   */
  topicAliasMaximum?: number;
  /** Longest Response Topic an MQTT 5 request may carry, UTF-8 bytes; longer is refused (PUBACK/PUBREC 0x97, QoS 0 dropped). Default 1024. */
  maxResponseTopicLength?: number;
  /** Longest Correlation Data an MQTT 5 request may carry, bytes; longer is refused (PUBACK/PUBREC 0x97, QoS 0 dropped). Default 1024. */
  maxCorrelationDataLength?: number;
  /** User Properties per MQTT 5 CONNECT or PUBLISH; more is refused (CONNACK 0x97; PUBACK/PUBREC 0x97, QoS 0 dropped). Default 32. */
  maxUserProperties?: number;
  /** UTF-8 bytes of User Property names and values per MQTT 5 CONNECT or PUBLISH; more is refused like maxUserProperties. Default 4096. */
  maxUserPropertyBytes?: number;
  /** Peers whose `X-Forwarded-For` header is believed (exact IPs, IPv4-mapped forms included). Default none. */
  trustedProxies?: string[];
  /** Called at CONNECT; without it every CONNECT is accepted. */
  authenticate?: (info: ConnectInfo) => AuthenticateResult | Promise<AuthenticateResult>;
  /**
   * ms a graceful stop waits for requests in flight, then for the session store to take the
   * changes not stored yet (retried), before closing connections; users whose last change is
   * still unstored then are logged at error. Default 10 000.
   */
  stopTimeout?: number;
  /** Where the gate logs; pino-compatible. Default: the app's logger, else silent. */
  logger?: Logger;
  /**
   * Persists sessions of bound users (MemoryStorage, RedisStorage or your own). Without it
   * nothing is persisted and a reconnecting client starts with empty settings.
   */
  storage?: StorageHandler;
  /** ms between StorageHandler heartbeats of a bound session with traffic. Default 60 000 (mqant's Heartbeat). */
  heartbeatInterval?: number;
  /** Delete what is stored for a user on every unbind, not only on unbind with delete. Default false. */
  deleteOnUnbind?: boolean;
  /** ms before the first retry of a failed store write; doubles up to storageRetryMaxDelay. Default 500. */
  storageRetryDelay?: number;
  /** ms, the longest wait between retries of a failed store write. Default 30 000. */
  storageRetryMaxDelay?: number;
  /**
   * Where users are connected across gates (RedisUserIndex for several processes). Default:
   * the app's (`AppContext.userIndex`, which every app has).
   */
  userIndex?: UserIndex;
  /**
   * What a second login of the same user does, enforced atomically across gates. Default
   * `{ policy: 'allow' }` (several sessions, no cap: mqant's behaviour).
   */
  duplicateLogin?: DuplicateLoginPolicy;
  /** Longest user id a Bind accepts, UTF-8 bytes; longer fails with code LIMIT. 0 = no limit. Default 256. */
  maxUserIdBytes?: number;
  /** Most settings keys a session holds; a change past it fails with code LIMIT. 0 = no limit. Default 256. */
  maxSettings?: number;
  /** Longest settings key, UTF-8 bytes. 0 = no limit. Default 256. */
  maxSettingKeyBytes?: number;
  /** Longest settings value, UTF-8 bytes. 0 = no limit. Default 16 384. */
  maxSettingValueBytes?: number;
  /**
   * All settings keys and values of a session together, UTF-8 bytes; also what is kept of a
   * stored session at Bind (keys past it are dropped with a warning). Kept under
   * maxPacketSize so a reply holding the settings fits one packet. 0 = no limit. Default 49 152.
   */
  maxSettingsBytes?: number;
  /**
   * Unsent output of a connection, bytes (written in earlier ticks, not yet taken by the
   * kernel), above which the gate stops reading that client until its output drains: a
   * client that sends (PINGREQ floods, requests) but does not read fills its own kernel
   * buffers, not the gate's heap. Default 65 536.
   */
  outputHighWaterMark?: number;
  /**
   * ms a connection may stay stopped on its unsent output (its client does not read)
   * before it is closed as a slow consumer (MQTT 5: DISCONNECT 0x97). Default 30 000.
   */
  slowConsumerTimeout?: number;
  /** MQTT over TLS listener (mqtts; port 8883 by convention), or `false` for none. Default false. */
  mqtts?: TlsListenOptions | false;
  /** MQTT over secure WebSocket listener (wss), or `false` for none. Default false. */
  wss?: TlsListenOptions | false;
  /**
   * Port of the HTTP server with `/metrics` (Prometheus text), `/healthz` and `/readyz`, or
   * `false` for none. Default false (the `mqgate` command and the demo: 9563).
   */
  metricsPort?: number | false;
  /** Interface the metrics server binds. Default: all interfaces. */
  metricsHost?: string;
  /** Handler names counted by name per module in metrics; further ones are counted as `other`. Default 50. */
  metricsHandlerCap?: number;
  /** ms over which `drain()` closes the connected clients, in batches. Default 10 000. */
  drainPeriod?: number;
  /**
   * JWT at CONNECT (see {@link JwtOptions}; field defaults in `DEFAULTS.jwt`): the token is
   * the Password (or MQTT 5 Authentication Data with Authentication Method `JWT`); a valid one
   * binds the session to its user before the CONNACK, an invalid one gets CONNACK 4 / 5
   * (MQTT 5: 0x86 / 0x87); the connection is closed at `exp` unless refreshed on
   * `gate/HD_refresh/<msgid>` `{"token"}`. Default: off.
   */
  jwt?: JwtOptions;
  /**
   * ms a bound session whose connection dropped (no clean DISCONNECT) is kept detached for a
   * resume (`gate/HD_resume` with its token, issue 10); an MQTT 5 client's Session Expiry
   * Interval, capped by this, wins. 0 turns resume off (no tokens either). At most 2 147 483 647 (Node's longest timer). Default 120 000.
   */
  resumeWindow?: number;
  /** Pushes kept per detached session; past it the oldest are dropped and counted (`lost`). Default 50. */
  resumeBufferMessages?: number;
  /** Bytes of pushes kept per detached session (bodies + topics + 64 each); past it the oldest are dropped. Default 65 536. */
  resumeBufferBytes?: number;
  // Outbound QoS 1 (issue 10, rule 7: `session.send(topic, body, { qos: 1 })`)
  /**
   * QoS 1 pushes a connection may hold unacknowledged (no PUBACK yet); further ones queue.
   * An MQTT 5 client's Receive Maximum, when lower, wins (MQTT-3.3.4-7). 1..65 535 (packet
   * identifiers, MQTT-2.3.1-1). Default 32, EMQX's `mqtt.max_inflight`.
   */
  maxOutboundInflight?: number;
  /**
   * QoS 1 pushes a connection may queue behind that window, in order; one more is dropped,
   * counted in mqgate_messages_dropped_total, and `Send` rejects with LIMIT. Pushes held
   * (in flight and queued, body + topic + 64 bytes each) are bounded by maxBufferedBytes too.
   * 0 = no queue. Default 1000, EMQX's `mqtt.max_mqueue_len`.
   */
  maxOutboundQueue?: number;
  // --- resume at CONNECT and its limits (issue 10, rule 6) ---
  /**
   * Detached sessions this gate holds at once; at the cap the oldest one is dropped (its
   * window ends early: freed, its user-index entry removed, counted in
   * `mqgate_detached_dropped_total`, a rate-limited warn `limit:maxDetached`). Each holds
   * up to resumeBufferBytes of pushes (at the defaults 10 000 × 64 KiB ≈ 655 MB), plus the
   * QoS 1 pushes its client had not acknowledged (opt-in, bounded by maxBufferedBytes each).
   * 0 = no cap. Default 10 000.
   */
  maxDetached?: number;
  /**
   * Bytes all detached sessions of the gate hold at once, their missed pushes and the QoS 1
   * pushes their clients had not acknowledged (bodies + topics + 64 each; a broadcast's Buffer
   * counts once per session). Past it the oldest pushes of the oldest detached sessions are
   * dropped first until the total is back under (the session itself stays: its resume reports
   * them in `lost`; a rate-limited warn `limit:maxDetachedBytesTotal`; `gate.stats()`'s
   * `detachedBytes` and `detachedEvicted`). `0` or `false` turns it off. Default: an eighth of
   * V8's heap limit (`v8.getHeapStatistics().heap_size_limit / 8`, about 512 MiB on a 4 GiB
   * heap), half of maxBufferedBytesTotal's default. A negative value is a RangeError.
   */
  maxDetachedBytesTotal?: number | false;

  // Output bound (issue 11).
  /**
   * Bytes the gate holds for its clients, across all connections: unsent output (replies and
   * pushes written, not yet taken by the kernel; a Buffer shared by several connections counts
   * once per connection) and the QoS 1 pushes in each inflight window and queue, kept until
   * the client's PUBACK (MQTT-4.3.2; body + topic + 64 each). Past it: pushes (session.send,
   * sendBatch, sendToUser, broadcast, QoS 0 and 1) to a connection holding more than
   * outputHighWaterMark of these bytes are dropped and counted
   * (`mqgate_pushes_dropped_total{reason="memory"}`, `gate.stats().droppedMemory`), never
   * buffered; replies to a client's own requests still go out (bounded by maxInflight per
   * connection); and the connections holding the most are closed first (reason
   * `slow consumer: ...`, no DISCONNECT: it would wait behind the unread backlog; MQTT 5.0
   * §4.13 makes it a MAY) until the total is back under. `0` or `false` turns it off.
   * Default: a quarter of V8's heap limit (`v8.getHeapStatistics().heap_size_limit / 4`, about
   * 1 GiB on a 4 GiB heap): output buffers are off-heap, but the heap limit is what the
   * process was sized for (`--max-old-space-size`, the container).
   */
  maxBufferedBytesTotal?: number | false;

  // ---- per-connection input rates (issue 11) ----
  /**
   * Packets per second one connection may send, any type (PUBLISH, PINGREQ, SUBSCRIBE,
   * PUBREL...: a PINGREQ flood counts), as a token bucket `{ perSecond, burst }` (burst
   * defaults to twice perSecond), or `false` for no limit. At the limit the gate stops reading
   * that connection until the bucket has refilled (EMQX's `messages_rate`): its bytes wait in
   * the kernel and TCP flow control slows the client; it is never disconnected for its rate.
   * Default `{ perSecond: 1000, burst: 2000 }` (a game client sends tens to a few hundred a
   * second; benchmarks of raw throughput turn it off).
   * @throws RangeError from the Gate constructor when perSecond or burst is not a positive number, or burst < 1.
   */
  messageRate?: Partial<RateLimit> | false;
  /**
   * Bytes per second read from one connection, as a token bucket `{ perSecond, burst }`
   * (burst defaults to twice perSecond), or `false` for no limit; at the limit reading pauses
   * as with messageRate. Charged per read chunk (at most 64 KiB on TCP, one WebSocket message).
   * Default `{ perSecond: 1 048 576, burst: 2 097 152 }` (1 MiB/s, bursts of 2 MiB: 32 packets of maxPacketSize).
   * @throws RangeError as messageRate.
   */
  byteRate?: Partial<RateLimit> | false;

  // ---- faults (issue 11, finding 11): the user index rebuilt after an empty Redis restart
  /**
   * ms between two looks at the user index's epoch (`UserIndex.epoch`, RedisUserIndex: the
   * key `<prefix>user-index:epoch`); when it changed (Redis restarted empty, flushed), the
   * gate re-puts every bound session's entry, pipelined, so online, whisper and
   * duplicate-login policies are right again within one interval. 0: never looks. An
   * index without `epoch` is not looked at. Default 1 000.
   */
  userIndexCheckInterval?: number;

  // --- Admission at the door (issue 11): see admission.ts ---
  /**
   * New connections per second per client address, a token bucket: `burst` at once, then
   * `perSecond` (EMQX's listener `max_conn_rate`, here per address). Past it a connection is
   * closed at accept, before CONNECT is read. `false` = no rate. Default `{ perSecond: 50, burst: 200 }`:
   * a host in a reconnect loop is held to 50/s, while 1000 clients behind one NAT come back
   * from a gate restart in about 16 s.
   */
  connectRate?: { perSecond: number; burst: number } | false;
  /**
   * Client addresses the per-address counts and rate buckets track. Past it the idle ones
   * (no open connection) are evicted, oldest first; when none is idle among the oldest 64, a
   * connection from a new address is refused (reason `maxTrackedIps`). Default 100 000 (a few MB).
   */
  maxTrackedIps?: number;
  /**
   * Flapping detection (EMQX's `flapping_detect`): a client id whose CONNECT is accepted more
   * than `maxCount` times within `window` ms is banned for `banTime` ms and that connection
   * closed (MQTT 5: DISCONNECT 0x8A); later CONNECTs get CONNACK 0x8A Banned / 3.1.1 return
   * code 5. By client id, not address: many clients share an address, which `connectRate`
   * covers. Accepted CONNECTs only: refused ones (bad credentials) do not count, so nobody can
   * get another client's id banned. EMQX counts disconnects; this counts accepted CONNECTs. `false` = off. Default `{ maxCount: 15, window: 60 000, banTime: 300 000 }` (EMQX's).
   */
  flapping?: { maxCount: number; window: number; banTime: number } | false;
  /** Client ids the flapping detection tracks at once; past it the oldest is forgotten. Default 100 000. */
  maxTrackedClientIds?: number;
  /**
   * Bans held (`gate.ban`, flapping); a `gate.ban` past it throws RangeError, a flapping ban
   * past it is not made (and logged). Expired bans do not count. Default 10 000.
   */
  maxBans?: number;
  /**
   * ms between two reads of the shared ban list from the user index (when it supports bans,
   * like RedisUserIndex): a ban made on another gate takes effect here within this. Never read
   * per connection. Default 5000.
   */
  banSyncInterval?: number;
}

export type ResolvedGateOptions = Required<
  Omit<
    GateOptions,
    | 'authenticate'
    | 'logger'
    | 'storage'
    | 'userIndex'
    | 'metricsHost'
    | 'jwt'
    | 'maxBufferedBytesTotal'
    | 'maxDetachedBytesTotal'
    | 'messageRate'
    | 'byteRate'
    | 'maxConnections'
  >
> & {
  /** Bytes; 0 = off. */
  maxBufferedBytesTotal: number;
  /** Bytes; 0 = off. */
  maxDetachedBytesTotal: number;
  /** Resolved: `'auto'` is replaced by {@link autoMaxConnections}. */
  maxConnections: number;
  authenticate: GateOptions['authenticate'];
  logger: Logger | undefined;
  storage: StorageHandler | undefined;
  userIndex: UserIndex | undefined;
  metricsHost: string | undefined;
  jwt: ResolvedJwtOptions | undefined;
  messageRate: RateLimit | false;
  byteRate: RateLimit | false;
};

/** Every default in one place. */
export const DEFAULTS = {
  tcp: { port: 3563 } as ListenOptions,
  websocket: { port: 3653 } as ListenOptions,
  connectTimeout: 10_000,
  maxIdle: 60_000,
  maxKeepalive: 1200,
  maxPacketSize: 65_536,
  maxBufferedBytes: 4 * 1024 * 1024,
  maxConnections: 'auto' as number | 'auto',
  maxConnectionsPerIp: 1000,
  maxInflight: 20,
  ordered: false,
  handlerTimeout: 10_000,
  maxQos2Pending: 100,
  topicAliasMaximum: 16,
  maxResponseTopicLength: 1024,
  maxCorrelationDataLength: 1024,
  maxUserProperties: 32,
  maxUserPropertyBytes: 4096,
  trustedProxies: [] as string[],
  stopTimeout: 10_000,
  heartbeatInterval: 60_000,
  deleteOnUnbind: false,
  storageRetryDelay: 500,
  storageRetryMaxDelay: 30_000,
  maxUserIdBytes: 256,
  maxSettings: 256,
  maxSettingKeyBytes: 256,
  maxSettingValueBytes: 16_384,
  maxSettingsBytes: 49_152,
  outputHighWaterMark: 65_536,
  slowConsumerTimeout: 30_000,
  mqtts: false,
  wss: false,
  metricsPort: false,
  metricsHandlerCap: 50,
  drainPeriod: 10_000,
  /** Defaults of the `jwt` fields; JWT itself is off unless `jwt` is given. ms, s (clockTolerance) and bytes. */
  jwt: {
    userIdClaim: 'sub',
    clockTolerance: 5,
    maxTokenBytes: 8192,
    refreshInterval: 1000,
    jwksCooldown: 30_000,
    jwksCacheMaxAge: 600_000,
    jwksTimeout: 5000,
  },
  resumeWindow: 120_000,
  resumeBufferMessages: 50,
  resumeBufferBytes: 65_536,
  // Outbound QoS 1 (issue 10, rule 7)
  maxOutboundInflight: 32,
  maxOutboundQueue: 1000,
  // resume at CONNECT and its limits (issue 10, rule 6)
  maxDetached: 10_000,
  // an eighth of V8's heap limit (see GateOptions.maxDetachedBytesTotal)
  maxDetachedBytesTotal: Math.floor(getHeapStatistics().heap_size_limit / 8),
  // Output bound (issue 11): a quarter of V8's heap limit (see GateOptions.maxBufferedBytesTotal).
  maxBufferedBytesTotal: Math.floor(getHeapStatistics().heap_size_limit / 4),
  // per-connection input rates (issue 11): above what an honest client sends
  messageRate: { perSecond: 1000, burst: 2000 } as RateLimit | false,
  byteRate: { perSecond: 1024 * 1024, burst: 2 * 1024 * 1024 } as RateLimit | false,
  // faults: user index re-assert
  userIndexCheckInterval: 1000,
  // --- Admission at the door (issue 11) ---
  connectRate: { perSecond: 50, burst: 200 } as { perSecond: number; burst: number } | false,
  maxTrackedIps: 100_000,
  flapping: { maxCount: 15, window: 60_000, banTime: 300_000 } as { maxCount: number; window: number; banTime: number } | false,
  maxTrackedClientIds: 100_000,
  maxBans: 10_000,
  banSyncInterval: 5000,
} as const;

/** maxConnections' `'auto'` where the open-files limit cannot be read (not Linux, or unlimited). */
export const FALLBACK_FILE_LIMIT = 10_000;

/** The process's open-files soft limit: `/proc/self/limits` "Max open files" on Linux, else {@link FALLBACK_FILE_LIMIT}. */
export function fileDescriptorLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(read());
    const n = m ? Number(m[1]) : NaN;
    return Number.isSafeInteger(n) && n > 0 ? n : FALLBACK_FILE_LIMIT;
  } catch {
    return FALLBACK_FILE_LIMIT;
  }
}

/**
 * maxConnections `'auto'`: the open-files soft limit L minus a reserve of max(64, ⌈L / 10⌉)
 * for everything else the process opens (transport and storage sockets, listeners, metrics,
 * files), at least 1. L = 1024 gives 921; L = 20 000 gives 18 000; L = 1 048 576 gives 943 718.
 */
export function autoMaxConnections(limit = fileDescriptorLimit()): number {
  return Math.max(1, limit - Math.max(64, Math.ceil(limit / 10)));
}

function rate(o: { perSecond: number; burst: number } | false): { perSecond: number; burst: number } | false {
  if (o === false) return false;
  return { perSecond: positive('connectRate.perSecond', o.perSecond), burst: positive('connectRate.burst', o.burst) };
}

function flappingOf(o: { maxCount: number; window: number; banTime: number } | false): { maxCount: number; window: number; banTime: number } | false {
  if (o === false) return false;
  return {
    maxCount: positive('flapping.maxCount', o.maxCount),
    window: positive('flapping.window', o.window),
    banTime: positive('flapping.banTime', o.banTime),
  };
}

function positive(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`gate option ${name} must be a positive number, got ${v}`);
  return v;
}

function nonNegative(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`gate option ${name} must be an integer ≥ 0, got ${v}`);
  return v;
}

function upTo(name: string, v: number, max: number): number {
  if (v > max) throw new RangeError(`gate option ${name} must be at most ${max}, got ${v}`);
  return v;
}

/** A token-bucket option: false, or `{ perSecond > 0, burst ≥ 1 }` (burst defaulting to twice perSecond). */
function rateLimit(name: string, v: Partial<RateLimit> | false | undefined, fallback: RateLimit | false): RateLimit | false {
  if (v === undefined) return fallback && { ...fallback };
  if (v === false) return false;
  if (typeof v !== 'object' || v === null) throw new RangeError(`gate option ${name} must be { perSecond, burst } or false, got ${String(v)}`);
  const perSecond = positive(`${name}.perSecond`, v.perSecond as number);
  const burst = positive(`${name}.burst`, v.burst ?? 2 * perSecond);
  if (burst < 1) throw new RangeError(`gate option ${name}.burst must be at least 1, got ${burst}`);
  return { perSecond, burst };
}

function port(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 65535) throw new RangeError(`gate option ${name} must be a port from 0 to 65535, got ${v}`);
  return v;
}

/**
 * Fills in defaults and checks values.
 * @throws RangeError for a non-positive limit or timeout, topicAliasMaximum above 65 535, a bad `jwt` (see resolveJwtOptions),
 *   or a messageRate / byteRate that is neither false nor `{ perSecond > 0, burst ≥ 1 }`.
 */
export function resolveOptions(o: GateOptions = {}): ResolvedGateOptions {
  return {
    serverId: o.serverId ?? `gate@${randomBytes(8).toString('hex')}`,
    tcp: o.tcp === undefined ? { ...DEFAULTS.tcp } : o.tcp,
    websocket: o.websocket === undefined ? { ...DEFAULTS.websocket } : o.websocket,
    connectTimeout: positive('connectTimeout', o.connectTimeout ?? DEFAULTS.connectTimeout),
    maxIdle: positive('maxIdle', o.maxIdle ?? DEFAULTS.maxIdle),
    maxKeepalive: nonNegative('maxKeepalive', o.maxKeepalive ?? DEFAULTS.maxKeepalive),
    maxPacketSize: positive('maxPacketSize', o.maxPacketSize ?? DEFAULTS.maxPacketSize),
    maxBufferedBytes: positive('maxBufferedBytes', o.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes),
    maxConnections:
      (o.maxConnections ?? DEFAULTS.maxConnections) === 'auto' ? autoMaxConnections() : nonNegative('maxConnections', o.maxConnections as number),
    maxConnectionsPerIp: nonNegative('maxConnectionsPerIp', o.maxConnectionsPerIp ?? DEFAULTS.maxConnectionsPerIp),
    maxInflight: positive('maxInflight', o.maxInflight ?? DEFAULTS.maxInflight),
    ordered: o.ordered ?? DEFAULTS.ordered,
    handlerTimeout: positive('handlerTimeout', o.handlerTimeout ?? DEFAULTS.handlerTimeout),
    maxQos2Pending: positive('maxQos2Pending', o.maxQos2Pending ?? DEFAULTS.maxQos2Pending),
    topicAliasMaximum: upTo('topicAliasMaximum', nonNegative('topicAliasMaximum', o.topicAliasMaximum ?? DEFAULTS.topicAliasMaximum), 0xffff),
    maxResponseTopicLength: positive('maxResponseTopicLength', o.maxResponseTopicLength ?? DEFAULTS.maxResponseTopicLength),
    maxCorrelationDataLength: positive('maxCorrelationDataLength', o.maxCorrelationDataLength ?? DEFAULTS.maxCorrelationDataLength),
    maxUserProperties: nonNegative('maxUserProperties', o.maxUserProperties ?? DEFAULTS.maxUserProperties),
    maxUserPropertyBytes: nonNegative('maxUserPropertyBytes', o.maxUserPropertyBytes ?? DEFAULTS.maxUserPropertyBytes),
    trustedProxies: [...(o.trustedProxies ?? DEFAULTS.trustedProxies)],
    authenticate: o.authenticate,
    stopTimeout: positive('stopTimeout', o.stopTimeout ?? DEFAULTS.stopTimeout),
    logger: o.logger,
    storage: o.storage,
    userIndex: o.userIndex,
    duplicateLogin: { ...(o.duplicateLogin ?? { policy: 'allow' }) },
    heartbeatInterval: positive('heartbeatInterval', o.heartbeatInterval ?? DEFAULTS.heartbeatInterval),
    deleteOnUnbind: o.deleteOnUnbind ?? DEFAULTS.deleteOnUnbind,
    storageRetryDelay: positive('storageRetryDelay', o.storageRetryDelay ?? DEFAULTS.storageRetryDelay),
    storageRetryMaxDelay: positive('storageRetryMaxDelay', o.storageRetryMaxDelay ?? DEFAULTS.storageRetryMaxDelay),
    maxUserIdBytes: nonNegative('maxUserIdBytes', o.maxUserIdBytes ?? DEFAULTS.maxUserIdBytes),
    maxSettings: nonNegative('maxSettings', o.maxSettings ?? DEFAULTS.maxSettings),
    maxSettingKeyBytes: nonNegative('maxSettingKeyBytes', o.maxSettingKeyBytes ?? DEFAULTS.maxSettingKeyBytes),
    maxSettingValueBytes: nonNegative('maxSettingValueBytes', o.maxSettingValueBytes ?? DEFAULTS.maxSettingValueBytes),
    maxSettingsBytes: nonNegative('maxSettingsBytes', o.maxSettingsBytes ?? DEFAULTS.maxSettingsBytes),
    outputHighWaterMark: positive('outputHighWaterMark', o.outputHighWaterMark ?? DEFAULTS.outputHighWaterMark),
    slowConsumerTimeout: positive('slowConsumerTimeout', o.slowConsumerTimeout ?? DEFAULTS.slowConsumerTimeout),
    mqtts: o.mqtts ? { ...o.mqtts } : DEFAULTS.mqtts,
    wss: o.wss ? { ...o.wss } : DEFAULTS.wss,
    metricsPort: o.metricsPort === undefined || o.metricsPort === false ? DEFAULTS.metricsPort : port('metricsPort', o.metricsPort),
    metricsHost: o.metricsHost,
    metricsHandlerCap: positive('metricsHandlerCap', o.metricsHandlerCap ?? DEFAULTS.metricsHandlerCap),
    drainPeriod: nonNegative('drainPeriod', o.drainPeriod ?? DEFAULTS.drainPeriod),
    jwt:
      o.jwt === undefined
        ? undefined
        : resolveJwtOptions(o.jwt, DEFAULTS.jwt, nonNegative('maxUserIdBytes', o.maxUserIdBytes ?? DEFAULTS.maxUserIdBytes)),
    resumeWindow: upTo('resumeWindow', nonNegative('resumeWindow', o.resumeWindow ?? DEFAULTS.resumeWindow), 2_147_483_647),
    resumeBufferMessages: nonNegative('resumeBufferMessages', o.resumeBufferMessages ?? DEFAULTS.resumeBufferMessages),
    resumeBufferBytes: nonNegative('resumeBufferBytes', o.resumeBufferBytes ?? DEFAULTS.resumeBufferBytes),
    // Outbound QoS 1 (issue 10, rule 7)
    maxOutboundInflight: upTo(
      'maxOutboundInflight',
      positiveInteger('maxOutboundInflight', o.maxOutboundInflight ?? DEFAULTS.maxOutboundInflight),
      0xffff,
    ),
    maxOutboundQueue: nonNegative('maxOutboundQueue', o.maxOutboundQueue ?? DEFAULTS.maxOutboundQueue),
    // resume at CONNECT and its limits (issue 10, rule 6)
    maxDetached: nonNegative('maxDetached', o.maxDetached ?? DEFAULTS.maxDetached),
    maxDetachedBytesTotal:
      o.maxDetachedBytesTotal === false ? 0 : nonNegative('maxDetachedBytesTotal', o.maxDetachedBytesTotal ?? DEFAULTS.maxDetachedBytesTotal),
    // Output bound (issue 11).
    maxBufferedBytesTotal:
      o.maxBufferedBytesTotal === false ? 0 : nonNegative('maxBufferedBytesTotal', o.maxBufferedBytesTotal ?? DEFAULTS.maxBufferedBytesTotal),
    // per-connection input rates (issue 11)
    messageRate: rateLimit('messageRate', o.messageRate, DEFAULTS.messageRate),
    byteRate: rateLimit('byteRate', o.byteRate, DEFAULTS.byteRate),
    // faults: user index re-assert
    userIndexCheckInterval: upTo(
      'userIndexCheckInterval',
      nonNegative('userIndexCheckInterval', o.userIndexCheckInterval ?? DEFAULTS.userIndexCheckInterval),
      2_147_483_647,
    ),
    // --- Admission at the door (issue 11) ---
    connectRate: rate(o.connectRate ?? DEFAULTS.connectRate),
    maxTrackedIps: positive('maxTrackedIps', o.maxTrackedIps ?? DEFAULTS.maxTrackedIps),
    flapping: flappingOf(o.flapping ?? DEFAULTS.flapping),
    maxTrackedClientIds: positive('maxTrackedClientIds', o.maxTrackedClientIds ?? DEFAULTS.maxTrackedClientIds),
    maxBans: positive('maxBans', o.maxBans ?? DEFAULTS.maxBans),
    banSyncInterval: positive('banSyncInterval', o.banSyncInterval ?? DEFAULTS.banSyncInterval),
  };
}

// Outbound QoS 1 (issue 10, rule 7)
function positiveInteger(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`gate option ${name} must be an integer ≥ 1, got ${v}`);
  return v;
}
