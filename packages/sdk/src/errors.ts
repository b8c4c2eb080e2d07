/**
 * The errors a {@link GateClient} rejects with. Each has a stable `name`, so code that
 * cannot use `instanceof` (two copies of the SDK, a worker boundary) can test `err.name`.
 */

/**
 * The gate or a module answered a request with an error: the reply envelope's `Error` was
 * not `""` (mqant's `{"Trace","Error","Result"}`). `message` is that text as the gate sent
 * it, e.g. `Service(type:x) not found`, `deadline exceeded: …`, or the handler's own message.
 */
export class GateError extends Error {
  override readonly name = 'GateError';
  /**
   * The leading `UPPER_CASE` word of the text when it has one (`BANNED`, `JWT_REQUIRED`,
   * `RATE_LIMITED`, `INVALID_TOKEN`…, the gate's stable codes), else undefined.
   */
  readonly code: string | undefined;
  constructor(
    message: string,
    /** The route asked, e.g. `user/HD_login`. */
    readonly route: string,
    /** The envelope's `Trace`: the id the gate logs the request under. */
    readonly trace: string,
    /** The envelope's `Result` (usually null on an error). */
    readonly result: unknown = null,
  ) {
    super(message);
    this.code = /^([A-Z][A-Z0-9_]+)(:|$)/.exec(message)?.[1];
  }
}

/** No reply within the request's `timeout` ms (default 10 000, mqant's RPC deadline). */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
  constructor(
    readonly route: string,
    /** The deadline that passed, ms. */
    readonly timeout: number,
  ) {
    super(`${route}: no reply within ${timeout} ms`);
  }
}

/**
 * The connection the request went out on closed before its reply came (a network failure,
 * a kick, `close()`). The request may or may not have run on the server; it is not sent
 * again unless it was made with `{ retry: true }`.
 */
export class ConnectionLostError extends Error {
  override readonly name = 'ConnectionLostError';
  constructor(
    readonly route: string,
    /** Why: `connection lost`, `closed by the client`, or a kick's reason. */
    readonly reason: string,
  ) {
    super(`${route}: ${reason} before the reply came`);
  }
}

/**
 * A connection attempt failed: the CONNACK refused it (`reasonCode` is the MQTT 5 reason
 * code, or the MQTT 3.1.1 return code), or the socket failed before a CONNACK came.
 */
export class ConnectError extends Error {
  override readonly name = 'ConnectError';
  constructor(
    message: string,
    /** CONNACK reason code (MQTT 5.0 §3.2.2.2) or return code (MQTT 3.1.1 §3.2.2.3); undefined when none came. */
    readonly reasonCode: number | undefined,
  ) {
    super(message);
  }
}
