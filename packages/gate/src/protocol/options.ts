import { getHeapStatistics } from 'node:v8';
import { optionChecker, RANGES, tokenBucket } from '@mqgate/rpc/internal';
import type { RateLimit } from './rate-limit';

/** One MQTT connection's limits: timers, packet and property sizes, in-flight windows, output bounds, input rates. Part of GateOptions; defaults in {@link PROTOCOL_DEFAULTS}. */
export interface ProtocolOptions {
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
  /** Requests running at once per connection; at the limit the gate stops reading that socket. Default 20 (mqant's ConcurrentTasks). */
  maxInflight?: number;
  /**
   * QoS 2 packet identifiers held between PUBREC and PUBREL per connection; one more closes the connection. Default 100.
   * MQTT 5 clients are held to the Receive Maximum the gate states instead (maxInflight, when lower):
   * one more is DISCONNECT 0x93 (MQTT-3.3.4-7).
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
  /**
   * QoS 1 pushes a connection may hold unacknowledged (no PUBACK yet); further ones queue.
   * An MQTT 5 client's Receive Maximum, when lower, wins (MQTT-3.3.4-9). 1..65 535 (packet
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
}

/** {@link ProtocolOptions} resolved: every default applied, every value checked. */
export type ResolvedProtocolOptions = Required<Omit<ProtocolOptions, 'maxBufferedBytesTotal' | 'messageRate' | 'byteRate'>> & {
  maxBufferedBytesTotal: number;
  messageRate: RateLimit | false;
  byteRate: RateLimit | false;
};

/** The defaults of {@link ProtocolOptions}. */
export const PROTOCOL_DEFAULTS = {
  connectTimeout: 10_000,
  maxIdle: 60_000,
  maxKeepalive: 1200,
  maxPacketSize: 65_536,
  maxBufferedBytes: 4 * 1024 * 1024,
  maxInflight: 20,
  maxQos2Pending: 100,
  topicAliasMaximum: 16,
  maxResponseTopicLength: 1024,
  maxCorrelationDataLength: 1024,
  maxUserProperties: 32,
  maxUserPropertyBytes: 4096,
  outputHighWaterMark: 65_536,
  slowConsumerTimeout: 30_000,
  maxOutboundInflight: 32,
  maxOutboundQueue: 1000,
  maxBufferedBytesTotal: Math.floor(getHeapStatistics().heap_size_limit / 4),
  messageRate: { perSecond: 1000, burst: 2000 } as RateLimit | false,
  byteRate: { perSecond: 1024 * 1024, burst: 2 * 1024 * 1024 } as RateLimit | false,
} as const;

const check = optionChecker('gate option');

/**
 * Fills in the defaults of {@link ProtocolOptions} and checks them.
 * @throws OptionError (code BAD_OPTION, a RangeError) naming the option, its range and the value.
 */
export function resolveProtocolOptions(o: ProtocolOptions): ResolvedProtocolOptions {
  const D = PROTOCOL_DEFAULTS;
  return {
    connectTimeout: check('connectTimeout', o.connectTimeout ?? D.connectTimeout, RANGES.positive),
    maxIdle: check('maxIdle', o.maxIdle ?? D.maxIdle, RANGES.positive),
    maxKeepalive: check('maxKeepalive', o.maxKeepalive ?? D.maxKeepalive, RANGES.uint16),
    maxPacketSize: check('maxPacketSize', o.maxPacketSize ?? D.maxPacketSize, RANGES.positive),
    maxBufferedBytes: check('maxBufferedBytes', o.maxBufferedBytes ?? D.maxBufferedBytes, RANGES.positive),
    maxInflight: check('maxInflight', o.maxInflight ?? D.maxInflight, RANGES.positive),
    maxQos2Pending: check('maxQos2Pending', o.maxQos2Pending ?? D.maxQos2Pending, RANGES.positive),
    topicAliasMaximum: check('topicAliasMaximum', o.topicAliasMaximum ?? D.topicAliasMaximum, RANGES.uint16),
    maxResponseTopicLength: check('maxResponseTopicLength', o.maxResponseTopicLength ?? D.maxResponseTopicLength, RANGES.positive),
    maxCorrelationDataLength: check('maxCorrelationDataLength', o.maxCorrelationDataLength ?? D.maxCorrelationDataLength, RANGES.positive),
    maxUserProperties: check('maxUserProperties', o.maxUserProperties ?? D.maxUserProperties, RANGES.count),
    maxUserPropertyBytes: check('maxUserPropertyBytes', o.maxUserPropertyBytes ?? D.maxUserPropertyBytes, RANGES.count),
    outputHighWaterMark: check('outputHighWaterMark', o.outputHighWaterMark ?? D.outputHighWaterMark, RANGES.positive),
    slowConsumerTimeout: check('slowConsumerTimeout', o.slowConsumerTimeout ?? D.slowConsumerTimeout, RANGES.positive),
    maxOutboundInflight: check('maxOutboundInflight', o.maxOutboundInflight ?? D.maxOutboundInflight, RANGES.packetIdentifier),
    maxOutboundQueue: check('maxOutboundQueue', o.maxOutboundQueue ?? D.maxOutboundQueue, RANGES.count),
    maxBufferedBytesTotal:
      o.maxBufferedBytesTotal === false ? 0 : check('maxBufferedBytesTotal', o.maxBufferedBytesTotal ?? D.maxBufferedBytesTotal, RANGES.count),
    messageRate: tokenBucket('gate option', 'messageRate', o.messageRate, D.messageRate),
    byteRate: tokenBucket('gate option', 'byteRate', o.byteRate, D.byteRate),
  };
}
