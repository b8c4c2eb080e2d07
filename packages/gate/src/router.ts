import type { IPublishPacket } from 'mqtt-packet';
import { HANDLER_PREFIX, type Address, type Logger, type RpcTransport, type RpcValue } from '@mqgate/rpc';
import type { GateSession } from './session';

/** A parsed request topic `moduleType[@serverId]/HD_handler[/msgid]`. */
export interface Route {
  address: Address;
  handler: string;
  /** Present for a request (a reply goes back on the same topic), absent for a notify. */
  msgid: string | undefined;
}

/** mqant's wording for a topic with fewer than two levels. */
export const TOPIC_FORM_ERROR =
  'Topic must be [moduleType@moduleID]/[handler]|[moduleType@moduleID]/[handler]/[msgid]';

/**
 * Parses a request topic (mqant gate/base/mqtt_agent.go). `user/HD_login/7` is a request
 * with msgid `7`; `user/HD_ping` a notify; `user@user-1/HD_x/7` pins the server `user@user-1`.
 * A msgid may itself hold `/` (mqant ignores levels past the third; we keep them so the reply
 * topic equals the request topic). Returns an error message instead of a Route when the
 * topic is not routable.
 */
export function parseTopic(topic: string): Route | string {
  const a = topic.indexOf('/');
  if (a <= 0) return TOPIC_FORM_ERROR;
  const b = topic.indexOf('/', a + 1);
  const handler = b < 0 ? topic.slice(a + 1) : topic.slice(a + 1, b);
  const msgid = b < 0 ? undefined : topic.slice(b + 1);
  if (!handler.startsWith(HANDLER_PREFIX) || handler.length === HANDLER_PREFIX.length) {
    return `Method(${handler}) must begin with '${HANDLER_PREFIX}'`;
  }
  const module = topic.slice(0, a);
  const at = module.indexOf('@');
  let address: Address;
  if (at < 0) address = { moduleType: module };
  else if (at === 0) return TOPIC_FORM_ERROR;
  else if (at === module.length - 1) address = { moduleType: module.slice(0, at) };
  else address = { serverId: module };
  return { address, handler, msgid };
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/**
 * Request body as a handler receives it: text that parses as a JSON object becomes that
 * object (mqant's "map" argument); anything else, JSON arrays included, stays bytes.
 */
export function decodePayload(buf: Buffer): Record<string, unknown> | Buffer {
  let start = 0;
  let end = buf.length - 1;
  while (start <= end && isSpace(buf[start])) start++;
  while (end > start && isSpace(buf[end])) end--;
  if (end - start < 1 || buf[start] !== 0x7b || buf[end] !== 0x7d) return buf;
  try {
    const value: unknown = JSON.parse(buf.toString('utf8'));
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // not JSON: the handler gets the bytes
  }
  return buf;
}

/**
 * The reply body: bytes returned by a handler go out unwrapped (mqant's ProtocolMarshal);
 * anything else is wrapped in the envelope `{"Trace","Error","Result"}`.
 */
export function encodeReply(trace: string, error: string, result: unknown): Buffer {
  if (error === '' && result instanceof Uint8Array) {
    return Buffer.isBuffer(result) ? result : Buffer.from(result.buffer, result.byteOffset, result.byteLength);
  }
  try {
    // Same bytes as JSON.stringify({Trace, Error, Result}), without building the object.
    const body = result === undefined ? 'null' : JSON.stringify(result);
    return Buffer.from(`{"Trace":${JSON.stringify(trace)},"Error":${error === '' ? '""' : JSON.stringify(error)},"Result":${body ?? 'null'}}`);
  } catch (err) {
    const message = `the handler's result could not be encoded as JSON: ${(err as Error).message}`;
    return Buffer.from(JSON.stringify({ Trace: trace, Error: message, Result: null }));
  }
}

/** Counters of routed requests. */
export interface RouterStats {
  requests: number;
  notifies: number;
  errors: number;
}

/**
 * Routes one client PUBLISH to a module handler over the transport, and writes the reply on
 * the request topic. Handler args: `[session snapshot with Topic set, payload]`.
 */
export class Router {
  readonly stats: RouterStats = { requests: 0, notifies: 0, errors: 0 };

  constructor(
    private readonly transport: RpcTransport,
    private readonly handlerTimeout: number,
    private readonly logger: Logger,
  ) {}

  async route(session: GateSession, packet: IPublishPacket): Promise<void> {
    const topic = packet.topic;
    const route = parseTopic(topic);
    if (typeof route === 'string') {
      this.stats.errors++;
      // A topic without two levels is answered anyway, as mqant does; otherwise only requests.
      if (!topic.includes('/') || topic.split('/').length > 2) this.reply(session, topic, route, null);
      else this.logger.debug({ sessionId: session.sessionId, topic, error: route }, 'unroutable notify dropped');
      return;
    }
    const payload = decodePayload(packet.payload as Buffer);
    const args: RpcValue[] = [session.snapshot(topic), payload];
    if (route.msgid === undefined) this.stats.notifies++;
    else this.stats.requests++;
    let result: RpcValue;
    try {
      result = await this.transport.call(route.address, route.handler, args, { timeout: this.handlerTimeout });
    } catch (err) {
      this.stats.errors++;
      const message = err instanceof Error ? err.message : String(err);
      if (route.msgid === undefined) {
        this.logger.debug({ sessionId: session.sessionId, topic, error: message }, 'notify failed');
      } else {
        this.reply(session, topic, message, null);
      }
      return;
    }
    if (route.msgid !== undefined) this.reply(session, topic, '', result);
  }

  private reply(session: GateSession, topic: string, error: string, result: unknown): void {
    session.conn.publish(topic, encodeReply(session.traceId, error, result));
  }
}
