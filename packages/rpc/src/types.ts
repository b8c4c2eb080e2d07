// The data types shared by rpc's modules (transport values, the Session, MQTT 5 request data).
// A leaf of the import graph: it imports nothing, so any rpc module may use it without a cycle.

/**
 * A value that may cross a transport as an argument or a result: what mqant's RPC
 * argument types cover (null, bool, number, string, bytes, JSON, SESSION).
 * Values are treated as immutable once sent: the in-process transport passes them by
 * reference, the Redis one copies them.
 */
export type RpcValue = null | boolean | number | string | Uint8Array | SessionData | RpcValue[] | { [key: string]: unknown };

/**
 * User Properties (MQTT 5.0 §3.3.2.3.7): name → value, or name → values in order when a
 * name occurs more than once (MQTT.js's shape). Names and values are UTF-8 strings.
 */
export type UserProperties = Readonly<Record<string, string | readonly string[]>>;

/**
 * What a module handler learns of an MQTT 5 request beyond its payload (`ctx.mqtt5`); it
 * travels inside the session snapshot (SessionImp field 12, see proto/session.proto).
 */
export interface Mqtt5Request {
  /** The request's User Properties, absent when it had none. */
  userProperties?: UserProperties;
  /** The request's Content Type (§3.3.2.3.9), absent when it had none. */
  contentType?: string;
  /** The request's Correlation Data (§3.3.2.3.6), bytes as sent; the gate echoes it on the reply itself. */
  correlationData?: Uint8Array;
}

/**
 * The Session as it travels between the gate and modules: mqant's `SessionImp`
 * (proto/session.proto, package `basegate`). Plain data, no behaviour.
 *
 * `settings` is treated as immutable by everyone who holds it: a change makes a new
 * object. That lets the gate hand the same map to many in-flight requests without copying.
 */
export interface SessionData {
  /** Client address without port (mqant field 1 `IP`). */
  ip: string;
  /** `"tcp"` or `"websocket"` (field 2 `Network`). */
  network: string;
  /** `""` until Bind (field 3 `UserId`). */
  userId: string;
  /** Random, unguessable, new on every connection (field 4 `SessionId`). */
  sessionId: string;
  /** Node id of the owning gate, e.g. `"gate@3f9c..."` (field 5 `ServerId`). */
  serverId: string;
  /** Created once per connection (field 6 `TraceId`). */
  traceId: string;
  /** New on every request (field 7 `SpanId`). */
  spanId: string;
  /** User settings, string to string (field 8 `Settings`). */
  settings: Readonly<Record<string, string>>;
  /** Topic of the request being handled, `""` outside a request (field 10 `Topic`). */
  topic: string;
  /**
   * MQTT protocol level of the connection: 3 (3.1), 4 (3.1.1) or 5; 0 when not said (a
   * session from a Go mqant gate). mqgate's field 11 `ProtocolVersion`, outside mqant's
   * fields 1..10: mqant skips it, and 0 is left out of the bytes.
   */
  protocolVersion: number;
  /**
   * The MQTT 5 context of the request being handled (User Properties, Content Type,
   * Correlation Data); undefined outside a request and for requests that had none.
   * mqgate's field 12 `Mqtt5`, which mqant skips.
   */
  mqtt5: Mqtt5Request | undefined;
  /**
   * Resume: the SHA-256 of the session's current resume token and until when it
   * may be used, ms since epoch. Set only in what the gate gives its StorageHandler (fields
   * 13 and 14, which mqant skips); absent in snapshots modules see.
   */
  resume?: { tokenHash: Uint8Array; expiresAt: number };
  /**
   * mqant's field 9 `Carrier` (a tracing carrier mqant declares and never uses), present only
   * when decoded bytes held one: kept so that bytes from a Go mqant peer survive a decode and
   * an encode unchanged (mqant issue: it was lost).
   */
  carrier?: Readonly<Record<string, string>>;
  /**
   * Fields of the decoded bytes that this schema does not know (a newer peer's), as their raw
   * protobuf bytes; {@link encodeSession} writes them back, so nothing is lost in passing.
   */
  unknownFields?: Uint8Array;
}
