// Over 400 lines on purpose: one MQTT connection's state machine (parse at packet boundaries,
// dispatch, timers, the write path with its backpressure) shares per-connection state that a split
// would expose; every packet type's rules live in ./handlers, MQTT 5 state in ./mqtt5.ts.
import * as mqtt from 'mqtt-packet';
import type { Wire, WireSink } from '../wire/wire';
import { encodeAck, encodeAckV5, encodePublishQos0, encodePublishV5, PINGRESP, type PublishProperties } from './encode';
import { FrameGuard } from './frame-guard';
import { packetHandlers } from './handlers';
import { propertiesProblem, ReasonCode, type Mqtt5State } from './mqtt5';
import { State } from './state';
import type { Traffic } from '../metrics';

export { State } from './state';

/** What the protocol layer asks of the gate. One object shared by every connection. */
export interface ProtocolHooks<S = unknown> {
  /**
   * Decides a CONNECT (after the protocol checks). Returns an MQTT 5 CONNACK reason code
   * (MQTT 5.0 §3.2.2.2): 0 accepts; 0x86, 0x87, 0x88, 0x8C ... refuse, optionally with a
   * Reason String. The connect handler maps it to a 3.1.1 return code for levels 3 and 4
   * (0x86 → 4, 0x87 → 5, 0x88 → 3; MQTT-3.2.2.3).
   */
  authenticate(conn: MqttConnection<S>, packet: mqtt.IConnectPacket): ConnectVerdict | Promise<ConnectVerdict>;
  /** The CONNACK 0 has been written; the gate sets `conn.session` and `conn.requests` here. */
  connected(conn: MqttConnection<S>): void;
  /** The connection is closed (called once). */
  closed(conn: MqttConnection<S>, reason: string): void;
  /** A reply or push larger than the MQTT 5 client's Maximum Packet Size was dropped (MQTT-3.1.2-25). */
  dropped(conn: MqttConnection<S>, bytes: number): void;
  /** Counters of bytes, packets and pauses, when the gate keeps metrics (see metrics.ts). */
  traffic?: Traffic;
}

/** The authenticate hook's answer: a CONNACK reason code, or one with a Reason String for an MQTT 5 client. */
export type ConnectVerdict = number | { reasonCode: number; reasonString?: string };

/**
 * Where a connection's client PUBLISHes go once it is connected: the gate's request queue
 * of that connection (request-scheduler.ts), which also says how many more it can take.
 */
export interface RequestSink {
  /** A client PUBLISH to dispatch, once per message (QoS 2 duplicates filtered). */
  submit(packet: mqtt.IPublishPacket): void;
  /** How many more packets the connection may parse now (at least 1). */
  capacity(): number;
  /** The connection has closed: requests not yet started are dropped. */
  discard(): void;
}

/** Packets parsed per batch before the connection has a request queue (CONNECT first, then a few at a time). */
const BATCH_BEFORE_CONNACK = 8;

export interface ProtocolLimits {
  /** Largest keepalive accepted, seconds; 0 = any. */
  maxKeepalive: number;
  /** Unsent bytes a connection may hold before it is closed as a slow consumer. */
  maxBufferedBytes: number;
  connectTimeout: number;
  maxIdle: number;
  maxPacketSize: number;
  maxQos2Pending: number;
  /** MQTT 5 Receive Maximum the gate states in CONNACK: the gate's maxInflight (MQTT-3.3.4-9). */
  maxInflight: number;
  /** Inbound Topic Aliases an MQTT 5 client may set, 1..this (MQTT 5.0 §3.2.2.3.8); 0 = none. */
  topicAliasMaximum: number;
  /** Longest Response Topic of a request, UTF-8 bytes. */
  maxResponseTopicLength: number;
  /** Longest Correlation Data of a request, bytes. */
  maxCorrelationDataLength: number;
  /** User Properties per packet (CONNECT, PUBLISH). */
  maxUserProperties: number;
  /** UTF-8 bytes of User Property names and values per packet. */
  maxUserPropertyBytes: number;
  /** Unsent output, bytes, above which the connection stops reading its client until the output drains. */
  outputHighWaterMark: number;
  /** ms a connection may stay stopped on its unsent output (the client does not read) before it is closed. */
  slowConsumerTimeout: number;
}

/** Why reading is paused: the request queue is full, or the client does not read its answers. */
const PAUSE_REQUESTS = 1;
const PAUSE_OUTPUT = 2;

/** Packets a client may send after CONNECT, before its CONNACK; more closes the connection (aedes' queueLimit). */
const MAX_PACKETS_BEFORE_CONNACK = 42;

/**
 * One MQTT 3.1 / 3.1.1 / 5 connection: the parser, the state machine, timers, and writes.
 * Packet types are handled by one function each in ./handlers; the MQTT 5 state is in
 * {@link Mqtt5State} (`v5`, set at a level-5 CONNECT). mqtt-packet's parser switches to
 * MQTT 5 by itself after a level-5 CONNECT.
 */
export class MqttConnection<S = unknown> implements WireSink {
  state: State = State.New;
  clientId = '';
  protocolVersion = 4;
  /** ms without any packet after which the connection is closed. */
  idleLimit: number;
  lastSeen: number;
  readonly openedAt: number;
  /** QoS 2 packet identifiers received and not yet released (MQTT-4.3.3-2). */
  qos2: Set<number> | undefined;
  /** Packets received while CONNECT is being authenticated. */
  pending: mqtt.Packet[] | undefined;
  /** Why reading is paused (PAUSE_* bits; 0 = reading); idle checks are suspended meanwhile. */
  private pausedBy = 0;
  /** When reading stopped on unsent output (ms), for slowConsumerTimeout. */
  private outputPausedAt = 0;
  /** Control answers (acks, PINGRESP) of the packets being parsed, written as one buffer per batch. */
  private ctl: Buffer[] | undefined;
  /** Reading stopped for good (the gate is stopping); resume() does nothing. */
  frozen = false;
  /** Bytes received but not parsed yet because reading is paused. */
  private held: Buffer | undefined;
  /** The gate's per-connection state (its session), set once connected. */
  session: S | undefined;
  /** Where client PUBLISHes go, set once connected. */
  requests: RequestSink | undefined;
  /** The code of the CONNACK that refused this connection's CONNECT, once one was sent (for metrics). */
  refused: { code: number; v5: boolean } | undefined;
  /** The MQTT 5 state, set by a level-5 CONNECT; undefined for 3.1 / 3.1.1. */
  v5: Mqtt5State | undefined;

  private readonly parser: ReturnType<typeof mqtt.parser>;
  private readonly guard: FrameGuard;

  constructor(
    readonly wire: Wire,
    readonly hooks: ProtocolHooks<S>,
    readonly limits: ProtocolLimits,
  ) {
    this.lastSeen = Date.now();
    // connectTimeout runs from TCP accept, through a WebSocket upgrade or PROXY header (issue 11).
    this.openedAt = wire.acceptedAt ?? this.lastSeen;
    this.idleLimit = limits.maxIdle;
    this.guard = new FrameGuard(limits.maxPacketSize);
    const parser = mqtt.parser() as ParserWithConnection;
    parser[CONNECTION] = this;
    parser.on('packet', onParserPacket);
    parser.on('error', onParserError);
    this.parser = parser;
  }

  /** WireSink: bytes from the client. */
  data(chunk: Buffer): void {
    if (this.state === State.Closed) return;
    if (this.hooks.traffic) this.hooks.traffic.bytesIn += chunk.length;
    if (this.held || this.pausedBy !== 0) {
      // Reading is paused: keep what the wire had already delivered (a paused WebSocket still
      // hands over the frames it had received), in order, until resume().
      this.held = this.held ? Buffer.concat([this.held, chunk]) : chunk;
      return;
    }
    this.feed(chunk);
  }

  /**
   * Parses as many whole packets at once as the gate can still take (`hooks.capacity`), so
   * that a pause (backpressure, stop) takes effect at a packet boundary: the rest of the
   * chunk waits in `held` until resume(), and no more than maxInflight requests of a
   * connection are ever running or queued. Usually the whole chunk goes in one parse.
   */
  private feed(chunk: Buffer): void {
    let from = 0;
    while (from < chunk.length) {
      const budget = this.requests ? this.requests.capacity() : BATCH_BEFORE_CONNACK;
      let end = from;
      for (let n = 0; end < chunk.length && n < budget; n++) {
        end = this.guard.next(chunk, end);
        if (end < 0) {
          const violation = this.guard.violation ?? 'malformed packet';
          const code = violation.startsWith('packet of') ? ReasonCode.PacketTooLarge : ReasonCode.MalformedPacket;
          return this.fail(code, violation, 'destroy');
        }
      }
      try {
        this.parser.parse(from === 0 && end === chunk.length ? chunk : chunk.subarray(from, end));
      } catch (err) {
        // A handler that throws on input nobody foresaw closes this connection, never the gate.
        return this.destroy(`malformed packet: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (this.state === State.Closed) return;
      this.flushControl();
      this.checkOutput();
      from = end;
      if (this.readPaused && from < chunk.length) {
        this.held = chunk.subarray(from);
        return;
      }
    }
  }

  /** WireSink: the socket has gone. */
  closed(error?: Error): void {
    this.finish(error ? `connection lost: ${error.message}` : 'connection lost');
  }

  /** @internal (called by the parser) */
  onPacket(packet: mqtt.Packet): void {
    if (this.state === State.Closed) return;
    this.lastSeen = Date.now();
    const t = this.hooks.traffic;
    if (t) t.packetsIn[packet.cmd] = (t.packetsIn[packet.cmd] ?? 0) + 1;
    if (this.state === State.Connecting) {
      if (packet.cmd === 'connect') return this.close('second CONNECT (MQTT-3.1.0-2)');
      // No DISCONNECT before a CONNACK (MQTT-3.14.0-1): these close without one.
      const pending = (this.pending ??= []);
      if (pending.length >= MAX_PACKETS_BEFORE_CONNACK) return this.close('too many packets before CONNACK');
      pending.push(packet);
      return;
    }
    if (this.state === State.New) {
      if (packet.cmd !== 'connect') return this.close(`first packet was ${packet.cmd.toUpperCase()}, not CONNECT (MQTT-3.1.0-1)`);
    } else if (packet.cmd === 'connect') {
      return this.fail(ReasonCode.ProtocolError, 'second CONNECT (MQTT-3.1.0-2)');
    }
    const bad = propertiesProblem((packet as { properties?: unknown }).properties);
    if (bad) {
      const what = `${packet.cmd.toUpperCase()}: ${bad.what}`;
      // Before a CONNACK there is no DISCONNECT (MQTT-3.14.0-1): the connection just closes.
      return this.state === State.New ? this.destroy(what) : this.fail(bad.code, what, 'destroy');
    }
    const handler = packetHandlers[packet.cmd];
    if (handler) (handler as (c: MqttConnection, p: mqtt.Packet) => void)(this, packet);
    else this.fail(ReasonCode.ProtocolError, `unexpected ${packet.cmd.toUpperCase()} from a client`);
  }

  /** @internal (called by the parser) */
  onParseError(err: Error): void {
    if (this.state === State.Closed) return;
    if (this.state === State.New && /protocol version/i.test(err.message)) {
      // A CONNECT at a protocol level mqtt-packet does not know (MQTT-3.1.2-2).
      this.send({ cmd: 'connack', returnCode: 1, sessionPresent: false });
      this.refused = { code: 1, v5: false };
      return this.close('unsupported protocol level (MQTT-3.1.2-2)');
    }
    this.fail(ReasonCode.MalformedPacket, `malformed packet: ${err.message}`, 'destroy');
  }

  /**
   * Closes the connection for a reason the client is told: an MQTT 5 client first gets a
   * DISCONNECT with `reasonCode` and the reason as Reason String (MQTT 5.0 §3.14, MQTT-4.13.1-1),
   * then the connection closes after flushing. Levels 3 and 4 have no server DISCONNECT: the
   * connection closes (`close`) or is cut at once (`destroy`), as before.
   * @param reason why, for the gate's `disconnect` event; `reasonString` what the client is told (default: the same).
   */
  fail(reasonCode: number, reason: string, v3: 'close' | 'destroy' = 'close', reasonString = reason): void {
    if (this.state === State.Closed) return;
    if (this.v5 && this.state === State.Connected) {
      this.sendDisconnect(reasonCode, reasonString);
      return this.close(reason);
    }
    if (v3 === 'destroy') this.destroy(reason);
    else this.close(reason);
  }

  /** Writes an MQTT 5 DISCONNECT (MQTT 5.0 §3.14) with a Reason String unless the client's Maximum Packet Size forbids it (MQTT-3.14.2-3). */
  private sendDisconnect(reasonCode: number, reason: string): void {
    const packet: mqtt.IDisconnectPacket = { cmd: 'disconnect', reasonCode, properties: { reasonString: reason.slice(0, 256) } };
    let bytes = mqtt.generate(packet, PROTOCOL_V5);
    if (bytes.length > (this.v5?.maximumPacketSize ?? Infinity)) bytes = mqtt.generate({ cmd: 'disconnect', reasonCode }, PROTOCOL_V5);
    this.flushControl();
    this.wire.write(bytes);
  }

  /** Runs the packets that arrived during authentication. */
  flushPending(): void {
    const pending = this.pending;
    this.pending = undefined;
    if (!pending) return;
    for (const p of pending) this.onPacket(p);
    this.flushControl();
  }

  /** Writes one packet, in the connection's protocol level's encoding. */
  send(packet: mqtt.Packet): void {
    if (this.state === State.Closed) return;
    let bytes: Buffer;
    try {
      bytes = mqtt.generate(packet, this.v5 ? PROTOCOL_V5 : PROTOCOL_V4);
    } catch (err) {
      return this.destroy(`cannot encode ${packet.cmd.toUpperCase()}: ${(err as Error).message}`);
    }
    this.write(bytes);
  }

  /** Writes a PUBACK (0x40), PUBREC (0x50) or PUBCOMP (0x70); success (reason code 0x00 for MQTT 5). */
  sendAck(typeByte: 0x40 | 0x50 | 0x70, messageId: number): void {
    if (this.state === State.Closed) return;
    this.control(encodeAck(typeByte, messageId));
  }

  /**
   * Writes an MQTT 5 PUBACK / PUBREC / PUBCOMP with a reason code (MQTT 5.0 §3.4.2.1) and,
   * when the client did not turn Problem Information off (MQTT-3.1.2-29), the Reason String.
   */
  sendAckV5(typeByte: 0x40 | 0x50 | 0x70, messageId: number, reasonCode: number, reason: string | undefined): void {
    if (this.state === State.Closed) return;
    if (reason === undefined || !this.v5?.problemInformation) return void this.control(encodeAckV5(typeByte, messageId, reasonCode));
    const cmd = typeByte === 0x40 ? 'puback' : typeByte === 0x50 ? 'pubrec' : 'pubcomp';
    this.send({ cmd, messageId, reasonCode, properties: { reasonString: reason.slice(0, 256) } } as mqtt.Packet);
  }

  sendPingresp(): void {
    if (this.state === State.Closed) return;
    this.control(PINGRESP);
  }

  /**
   * Queues a control answer (PUBACK, PUBREC, PUBCOMP, PINGRESP) of the packet being handled:
   * the answers of one parse batch leave as one buffer in one write, in order, before
   * anything else is written. A client flooding PINGREQs therefore costs one write per
   * batch, not one per packet, and its answers count toward its unsent output like any other.
   */
  private control(bytes: Buffer): void {
    (this.ctl ??= []).push(bytes);
  }

  /** Writes the queued control answers. */
  private flushControl(): void {
    const ctl = this.ctl;
    if (!ctl) return;
    this.ctl = undefined;
    this.write(ctl.length === 1 ? ctl[0] : Buffer.concat(ctl));
  }

  /**
   * Stops reading a client whose unsent output passed outputHighWaterMark (it is not reading
   * what it asked for): its further input waits in the kernel, not in our heap, until the
   * output drains; it is closed if that takes longer than slowConsumerTimeout.
   */
  private checkOutput(): void {
    if (this.pausedBy & PAUSE_OUTPUT || this.wire.bufferedBytes() <= this.limits.outputHighWaterMark) return;
    this.outputPausedAt = Date.now();
    this.pause(PAUSE_OUTPUT);
    this.wire.whenDrained(() => this.resume(PAUSE_OUTPUT));
  }

  /**
   * Writes bytes unless the client has stopped reading: when more than maxBufferedBytes
   * written in earlier ticks are still unsent, the connection is closed as a slow consumer
   * instead of buffering without bound (one large reply or a burst in one tick is not).
   */
  write(bytes: Buffer): boolean {
    if (this.ctl) this.flushControl();
    const backlog = this.wire.bufferedBytes();
    if (backlog > this.limits.maxBufferedBytes) {
      // MQTT 5: DISCONNECT 0x97 behind the backlog, and the wire's end() bound (2 s) to flush it.
      this.fail(ReasonCode.QuotaExceeded, `slow consumer: ${backlog} bytes unsent, over maxBufferedBytes ${this.limits.maxBufferedBytes}`, 'destroy');
      return false;
    }
    this.wire.write(bytes);
    if (this.hooks.traffic) this.hooks.traffic.bytesOut += bytes.length;
    if (this.state === State.Connected) this.checkOutput();
    return true;
  }

  /**
   * Writes a QoS 0 PUBLISH: replies and pushes (mqant pushes at QoS 0, no subscription
   * needed). `props` go out to an MQTT 5 client only (MQTT 5.0 §3.3.2.3); a PUBLISH larger
   * than its Maximum Packet Size is dropped and reported to `hooks.dropped` (MQTT-3.1.2-25).
   * Returns false when nothing was written (closing, oversize, or not encodable).
   */
  publish(topic: string, payload: Buffer, props?: PublishProperties): boolean {
    const sent = this.publishQos0(topic, payload, props);
    const t = this.hooks.traffic;
    if (t && sent) t.sent++;
    else if (t) t.dropped++;
    return sent;
  }

  private publishQos0(topic: string, payload: Buffer, props: PublishProperties | undefined): boolean {
    if (this.state !== State.Connected) return false;
    let bytes: Buffer;
    const v5 = this.v5;
    try {
      bytes = v5 ? encodePublishV5(topic, payload, props) : encodePublishQos0(topic, payload);
    } catch {
      return false; // a topic or property too long to encode; callers validate topics first
    }
    if (v5 && bytes.length > v5.maximumPacketSize) {
      this.hooks.dropped(this, bytes.length);
      return false;
    }
    return this.write(bytes);
  }

  /** True while reading is paused, for any reason. */
  get readPaused(): boolean {
    return this.pausedBy !== 0;
  }

  /** Stops reading (the request queue is full: RequestQueue; or `reason` PAUSE_OUTPUT). */
  pause(reason = PAUSE_REQUESTS): void {
    const was = this.pausedBy;
    this.pausedBy |= reason;
    if (was !== 0) return;
    if (this.hooks.traffic) this.hooks.traffic.pauses++;
    this.wire.pause();
  }

  /** Clears one reason to pause; reading resumes when none is left (never once frozen). */
  resume(reason = PAUSE_REQUESTS): void {
    if (!(this.pausedBy & reason)) return;
    this.pausedBy &= ~reason;
    if (this.pausedBy !== 0 || this.frozen) return;
    this.lastSeen = Date.now();
    const held = this.held;
    this.held = undefined;
    if (held) this.feed(held);
    if (this.pausedBy === 0 && this.state !== State.Closed) this.wire.resume();
  }

  /** Stops reading for good: a stopping gate takes no new requests. */
  freeze(): void {
    this.pause();
    this.frozen = true;
  }

  /** Closes after flushing what was written. */
  close(reason: string): void {
    if (this.state === State.Closed) return;
    this.flushControl(); // the acks of packets handled before the close go out first
    if ((this.state as State) === State.Closed) return; // the flush found a slow consumer
    // A paused socket would never read the peer's FIN / close frame; input is ignored from here on.
    this.wire.resume();
    this.wire.end();
    this.finish(reason);
  }

  /** Closes at once, dropping unsent data (malformed input, oversize packets). */
  destroy(reason: string): void {
    if (this.state === State.Closed) return;
    this.wire.destroy();
    this.finish(reason);
  }

  private finish(reason: string): void {
    if (this.state === State.Closed) return;
    this.state = State.Closed;
    this.pending = undefined;
    this.qos2 = undefined;
    this.requests?.discard();
    this.hooks.closed(this, reason);
  }

  /**
   * Enforces the CONNECT deadline and keepalive; the gate calls it from one periodic sweep
   * instead of a timer per connection.
   */
  checkTimers(now: number): void {
    if (this.state === State.New || this.state === State.Connecting) {
      if (now - this.openedAt > this.limits.connectTimeout) this.destroy('no CONNECT within connectTimeout');
    } else if (this.state === State.Connected && this.pausedBy & PAUSE_OUTPUT) {
      // A socket emits 'drain' only after a write it refused; resume here if it drained without one.
      if (this.wire.bufferedBytes() <= this.limits.outputHighWaterMark) this.resume(PAUSE_OUTPUT);
      else if (now - this.outputPausedAt > this.limits.slowConsumerTimeout) {
        const backlog = this.wire.bufferedBytes();
        this.fail(
          ReasonCode.QuotaExceeded,
          `slow consumer: ${backlog} bytes unread for over slowConsumerTimeout ${this.limits.slowConsumerTimeout} ms`,
          'destroy',
        );
      }
    } else if (this.state === State.Connected && this.pausedBy === 0 && now - this.lastSeen > this.idleLimit) {
      this.fail(ReasonCode.KeepAliveTimeout, 'keepalive timeout (MQTT-3.1.2-24)');
    }
  }
}

const PROTOCOL_V4 = { protocolVersion: 4 } as const;
const PROTOCOL_V5 = { protocolVersion: 5 } as const;

// Shared parser listeners: no closures per connection.
const CONNECTION = Symbol('connection');
type ParserWithConnection = ReturnType<typeof mqtt.parser> & { [CONNECTION]: MqttConnection };
function onParserPacket(this: ParserWithConnection, packet: mqtt.Packet): void {
  this[CONNECTION].onPacket(packet);
}
function onParserError(this: ParserWithConnection, err: Error): void {
  this[CONNECTION].onParseError(err);
}
