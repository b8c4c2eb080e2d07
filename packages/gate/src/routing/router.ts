import type { IPublishPacket } from 'mqtt-packet';
import { type Logger, type Mqtt5Request, type RpcTransport, type RpcValue, type UserProperties } from '@mqgate/rpc';
import { clientTextOf, describeAddress, unwrapReply } from '@mqgate/rpc/internal';
import { outcomeOf } from '../ops/metrics';
import type { PublishProperties } from '../protocol/encode';
import type { GateSession } from '../session/session';
import type { WarnLog } from '../ops/warn-log';
import { decodePayload, ENVELOPE_CONTENT_TYPE, replyBody } from './envelope';
import { parseTopic } from './topic';

/** Counters of routed requests. */
export interface RouterStats {
  requests: number;
  notifies: number;
  errors: number;
}

/**
 * ms between two lines of one kind of failed request (`request:handler_error`,
 * `request:routing_error`, `request:deadline`): at most 100 lines a second each, so a storm
 * (a module down, a client sending garbage topics in a loop) does not flood the log; the
 * next line carries `suppressed: n`. Failures slower than that are each logged.
 */
export const FAILED_REQUEST_LOG_INTERVAL = 10;

/** Where a request's reply goes, and the MQTT 5 request properties it echoes. */
export interface ReplyTo {
  topic: string;
  /** Correlation Data of the request, echoed byte for byte (MQTT 5.0 §3.3.2.3.6, §4.10). */
  correlationData: Buffer | undefined;
}

/**
 * Routes one client PUBLISH to a module handler over the transport, and writes the reply.
 * Handler args: `[session snapshot with Topic set (and, for MQTT 5, the request's User
 * Properties / Content Type / Correlation Data in `mqtt5`), payload]`.
 *
 * What is a request: a PUBLISH with a Response Topic (MQTT 5.0 §4.10, request/response), whose
 * reply goes to that topic with the request's Correlation Data; else one with a msgid in its
 * topic (mqant's form), whose reply goes on the request topic; else it is a notify, with no
 * reply. To an MQTT 5 client a reply envelope carries Content Type `application/json` and
 * Payload Format Indicator 1; a bytes result goes out as it is, with neither; a handler's
 * reply properties ({@link unwrapReply}) add User Properties and override the Content Type.
 */
export class Router {
  readonly stats: RouterStats = { requests: 0, notifies: 0, errors: 0 };

  constructor(
    private readonly transport: RpcTransport,
    private readonly handlerTimeout: number,
    private readonly logger: Logger,
    /** The warn line of each failed request (rate-limited per kind, see {@link FAILED_REQUEST_LOG_INTERVAL}). */
    private readonly failed: WarnLog,
    private readonly warn: WarnLog = () => undefined,
  ) {}

  async route(session: GateSession, packet: IPublishPacket): Promise<void> {
    const topic = packet.topic;
    const props = packet.properties;
    const route = parseTopic(topic);
    let replyTo: ReplyTo | undefined;
    if (props?.responseTopic !== undefined) replyTo = { topic: props.responseTopic, correlationData: props.correlationData };
    if (typeof route === 'string') {
      this.stats.errors++;
      // A topic without two levels is answered anyway, as mqant does; otherwise only requests.
      if (replyTo === undefined && (!topic.includes('/') || topic.split('/').length > 2)) replyTo = { topic, correlationData: undefined };
      if (replyTo) {
        this.logFailure(session, 'routing_error', topic, undefined, route);
        this.reply(session, replyTo, route, null);
      } else this.logger.debug({ sessionId: session.sessionId, topic, error: route }, 'unroutable notify dropped');
      return;
    }
    if (replyTo === undefined && route.msgid !== undefined) replyTo = { topic, correlationData: props?.correlationData };
    const payload = decodePayload(packet.payload as Buffer);
    const args: RpcValue[] = [session.snapshot(topic, props === undefined ? undefined : requestContext(props)), payload];
    if (replyTo === undefined) this.stats.notifies++;
    else this.stats.requests++;
    let result: RpcValue;
    try {
      result = await this.transport.call(route.address, route.handler, args, { timeout: this.handlerTimeout });
    } catch (err) {
      this.stats.errors++;
      const message = err instanceof Error ? err.message : String(err);
      if (replyTo === undefined) {
        this.logger.debug({ sessionId: session.sessionId, topic, error: message }, 'notify failed');
      } else {
        // The full cause is in the log with the trace id; the client gets its client text.
        this.logFailure(session, outcomeOf(err), topic, route.msgid, message, (err as { code?: unknown }).code);
        this.reply(session, replyTo, clientTextOf(err, describeAddress(route.address)), null);
      }
      return;
    }
    if (replyTo !== undefined) this.reply(session, replyTo, '', result);
  }

  /**
   * One warn line per failed request, with the connection's trace id (mqant's TraceId, the
   * reply envelope's `Trace`): with the msgid (or the topic) it names the request a client
   * reports. Notifies that fail are logged at debug (nobody waits for them). Topic, msgid
   * and error are cut to 256, 64 and 512 characters.
   */
  private logFailure(session: GateSession, outcome: string, topic: string, msgid: string | undefined, error: string, code?: unknown): void {
    const fields = {
      trace: session.traceId,
      outcome,
      // Client-controlled: cut, so a client looping on 64 KiB topics cannot grow the log.
      topic: topic.slice(0, 256),
      msgid: msgid?.slice(0, 64),
      code: typeof code === 'string' ? code : undefined,
      error: error.slice(0, 512),
      sessionId: session.sessionId,
      clientId: session.conn.clientId,
      userId: session.userId || undefined,
    };
    this.failed(`request:${outcome}`, fields, 'request failed');
  }

  /**
   * Writes a reply envelope (or a handler's bytes) to the session's client; also used by the
   * gate's own requests (`gate/HD_resume`, `gate/HD_refresh`). A reply whose packet would be
   * larger than the connection's packetLimit (the gate's maxPacketSize, or the MQTT 5
   * client's Maximum Packet Size: MQTT-3.1.2-24 says the server must not send it) is not
   * sent: the client gets an Error envelope instead, `reply too large: N bytes exceeds
   * maxPacketSize M` (or `... the client's Maximum Packet Size M`), counted as dropped
   * `too_large`; if even that does not fit, nothing is sent.
   */
  reply(session: GateSession, to: ReplyTo, error: string, value: RpcValue): void {
    const [handlerProps, result] = unwrapReply(value);
    const body = replyBody(session.traceId, error, result);
    const conn = session.conn;
    let properties: PublishProperties | undefined;
    if (conn.v5) {
      const envelope = !(error === '' && result instanceof Uint8Array);
      properties = {};
      if (envelope) properties.payloadFormatIndicator = true;
      const contentType = handlerProps?.contentType ?? (envelope ? ENVELOPE_CONTENT_TYPE : undefined);
      if (contentType !== undefined) properties.contentType = contentType;
      if (to.correlationData !== undefined) properties.correlationData = to.correlationData;
      if (handlerProps?.userProperties !== undefined) properties.userProperties = handlerProps.userProperties;
    }
    const tooLarge = conn.reply(to.topic, body, properties);
    if (tooLarge > 0) this.replyTooLarge(session, to, tooLarge);
  }

  private replyTooLarge(session: GateSession, to: ReplyTo, bytes: number): void {
    const conn = session.conn;
    const limit = conn.packetLimit;
    const what = conn.v5 && conn.v5.maximumPacketSize === limit ? "the client's Maximum Packet Size" : 'maxPacketSize';
    const message = `reply too large: ${bytes} bytes exceeds ${what} ${limit}`;
    this.stats.errors++;
    conn.hooks.dropped(conn, bytes, 'too_large');
    this.warn('reply-too-large', { sessionId: session.sessionId, topic: to.topic.slice(0, 256), bytes, limit }, message);
    const properties: PublishProperties | undefined = conn.v5 ? { payloadFormatIndicator: true, contentType: ENVELOPE_CONTENT_TYPE } : undefined;
    if (properties && to.correlationData !== undefined) properties.correlationData = to.correlationData;
    const still = conn.reply(to.topic, replyBody(session.traceId, message, null), properties);
    if (still > 0) conn.hooks.dropped(conn, still, 'too_large');
  }
}

/** The MQTT 5 request context a handler sees (`ctx.mqtt5`), or undefined when the request carries none of it. */
function requestContext(p: NonNullable<IPublishPacket['properties']>): Mqtt5Request | undefined {
  if (p.userProperties === undefined && p.contentType === undefined && p.correlationData === undefined) return undefined;
  const out: { userProperties?: UserProperties; contentType?: string; correlationData?: Uint8Array } = {};
  if (p.userProperties !== undefined) out.userProperties = p.userProperties as UserProperties;
  if (p.contentType !== undefined) out.contentType = p.contentType;
  if (p.correlationData !== undefined) out.correlationData = p.correlationData;
  return out;
}
