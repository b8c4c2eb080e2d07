// Over 400 lines on purpose: one MQTT connection's state machine (parse at packet boundaries,
// dispatch, timers, the write path with its backpressure) shares per-connection state that a split
// would expose; every packet type's rules live in ./handlers, MQTT 5 state in ./mqtt5.ts.
import * as mqtt from 'mqtt-packet';
import type { Wire, WireSink } from '../wire/wire';
import {
  encodeAck,
  encodeAckV5,
  encodePublishQos0,
  encodePublishQos1,
  encodePublishV5,
  payloadSize,
  PINGRESP,
  type PublishProperties,
} from './encode';
import { FrameGuard } from './frame-guard';
import { HeldInput } from './held-input';
import { inputTurns, type TurnWaiter } from './input-turns';
import { propertiesProblem, ReasonCode, type Mqtt5State } from './mqtt5';
import { parsePublishFast } from './publish-fast-path';
import { propertyRulesProblem } from './v5-property-rules';
import { OutboundInflight, type OutboundPush } from './outbound-inflight';
import { packetParser } from './packet-parser';
import { holding, type OutputBudget } from './output-budget';
import { State } from './state';
import type { Traffic } from './traffic';
import { InputRate, type RateLimit, type RateLimitName } from './rate-limit';

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
  /**
   * A PUBLISH was not written: `too_large`, over the connection's packetLimit (the gate's
   * maxPacketSize or the MQTT 5 client's Maximum Packet Size, MQTT-3.1.2-24); `memory`, a
   * push to a slow connection while the gate's output is over maxBufferedBytesTotal.
   */
  dropped(conn: MqttConnection<S>, bytes: number, reason: DropReason): void;
  /** Counters of bytes, packets and pauses, when the gate keeps metrics (see ops/metrics.ts). */
  traffic?: Traffic;
  /** The gate's bound on unsent output across its connections (maxBufferedBytesTotal); undefined when off. */
  budget?: OutputBudget;
  /** Reading was paused because the connection went over its messageRate or byteRate (for the warn log). */
  rateLimited?(conn: MqttConnection<S>, limit: RateLimitName, rate: RateLimit): void;
}

/** Why a PUBLISH to a client was not written (see {@link ProtocolHooks.dropped}). */
export type DropReason = 'too_large' | 'memory';

/** The authenticate hook's answer: a CONNACK reason code, or one with a Reason String for an MQTT 5 client. */
/**
 * A CONNECT's outcome: a reason code, or one with a Reason String; accepted (0) with
 * `sessionPresent` when a session was resumed (CONNACK Session Present 1, MQTT-3.2.2-2),
 * `userId` when the authenticate hook named the client's user (gate.ts: Clean Session 0 / Clean Start 0 resumes the user's detached session).
 */
export type ConnectVerdict = number | { reasonCode: number; reasonString?: string; sessionPresent?: boolean; userId?: string };

/**
 * Where a connection's client PUBLISHes go once it is connected: the gate's request queue
 * of that connection (routing/scheduler.ts), which also says how many more it can take.
 */
export interface RequestSink {
  /** A client PUBLISH to dispatch, once per message (QoS 2 duplicates filtered). */
  submit(packet: mqtt.IPublishPacket): void;
  /** How many more packets the connection may parse now (at least 1). */
  capacity(): number;
  /** The connection has closed: requests not yet started are dropped. */
  discard(): void;
}

/**
 * Client packet type → its handler (./handlers `packetHandlers`), given to each connection by
 * whoever makes it, so that the handlers may import this module's types without a cycle.
 */
export type PacketHandlers = Partial<Record<mqtt.Packet['cmd'], (conn: MqttConnection, packet: never) => void>>;

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
  /** MQTT 5 Receive Maximum the gate states in CONNACK: the gate's maxInflight (the client's bound, MQTT-3.3.4-7). */
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
  // Outbound QoS 1 (QoS 1 pushes are delivered at least once)
  /** QoS 1 pushes unacknowledged at once toward a client (MQTT 5: capped by its Receive Maximum, MQTT-3.3.4-9). */
  maxOutboundInflight: number;
  /** QoS 1 pushes queued behind that window; one more is refused. */
  maxOutboundQueue: number;
  /** Packets per second read from one client (any type), or false; at the limit reading pauses (rate-limit.ts). */
  messageRate: RateLimit | false;
  /** Bytes per second read from one client, or false; at the limit reading pauses. */
  byteRate: RateLimit | false;
}

/** Why reading is paused: the request queue is full, the client does not read its answers, or it sends over its input rate. */
const PAUSE_REQUESTS = 1;
const PAUSE_OUTPUT = 2;
const PAUSE_RATE = 4;
/** Reading waits for a later turn of the event loop: this one's PUBLISH allowance is spent (input-turns.ts). */
const PAUSE_TURN = 8;

/** Packets a client may send after CONNECT, before its CONNACK; more closes the connection (aedes' queueLimit). */
const MAX_PACKETS_BEFORE_CONNACK = 42;

/**
 * One MQTT 3.1 / 3.1.1 / 5 connection: the parser, the state machine, timers, and writes.
 * Packet types are handled by one function each in ./handlers; the MQTT 5 state is in
 * {@link Mqtt5State} (`v5`, set at a level-5 CONNECT). mqtt-packet's parser switches to
 * MQTT 5 by itself after a level-5 CONNECT.
 */
export class MqttConnection<S = unknown> implements WireSink, TurnWaiter {
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
  private held: HeldInput | undefined;
  /** TurnWaiter: its share of the event-loop turn (input-turns.ts). */
  turnId = 0;
  turnSlice = 0;
  /** The gate's per-connection state (its session), set once connected. */
  session: S | undefined;
  /** Where client PUBLISHes go, set once connected. */
  requests: RequestSink | undefined;
  /** The code of the CONNACK that refused this connection's CONNECT, once one was sent (for metrics). */
  refused: { code: number; v5: boolean } | undefined;
  /** The MQTT 5 state, set by a level-5 CONNECT; undefined for 3.1 / 3.1.1. */
  v5: Mqtt5State | undefined;
  /** Outbound QoS 1 pushes in flight and queued, made at the first one; kept after the close for a resume to take. */
  outbound: OutboundInflight | undefined;
  /** Unsent bytes of this connection in the gate's output budget (0 when there is none). */
  counted = 0;
  /** Bytes of this connection's QoS 1 pushes (in flight and queued) in the gate's output budget. */
  pushBytes = 0;
  /** In the output budget's set of connections with unsent bytes after their last tick. */
  backlogged = false;
  /** Why the last PUBLISH dropped by pushEncoded was (for the caller's error). */
  lastDrop: DropReason | undefined;

  /**
   * mqtt-packet's parser for what the PUBLISH fast path does not take (CONNECT, acks,
   * PINGREQ, SUBSCRIBE...); released by the sweep once connected and unused since the last
   * sweep with nothing buffered (1.6 KiB of heap, and the CONNECT packet it keeps as its
   * settings, per idle connection), made again on demand with the same settings.
   */
  private parser: ParserWithConnection | undefined;
  /** The parser was used since the last sweep. */
  private parserUsed = true;
  /** Bytes the parser holds of a packet not yet whole (what its last parse() returned). */
  private parserHolds = 0;
  private readonly guard: FrameGuard;
  /** messageRate / byteRate buckets; undefined when both are off. */
  private readonly rate: InputRate | undefined;
  /** Packets the parser has produced (counted for messageRate). */
  parsed = 0;
  /** Resumes reading after a rate pause (the only timer a connection holds, only while paused on its rate). */
  private rateTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly wire: Wire,
    readonly hooks: ProtocolHooks<S>,
    readonly limits: ProtocolLimits,
    /** The packet handlers (./handlers `packetHandlers`); a type without one closes the connection. */
    private readonly handlers: PacketHandlers,
  ) {
    this.lastSeen = Date.now();
    // connectTimeout runs from TCP accept, through a WebSocket upgrade or PROXY header.
    this.openedAt = wire.acceptedAt ?? this.lastSeen;
    this.idleLimit = limits.maxIdle;
    this.guard = new FrameGuard(limits.maxPacketSize);
    this.rate = InputRate.of(limits.messageRate, limits.byteRate, this.openedAt);
    this.parser = newParser(this, undefined);
    if (hooks.budget) wire.flushTo = this;
  }

  /**
   * The largest packet this connection may be sent, bytes: the gate's maxPacketSize, or an
   * MQTT 5 client's Maximum Packet Size when smaller (MQTT-3.1.2-24: the server must not send
   * a packet above it).
   */
  get packetLimit(): number {
    const v5 = this.v5;
    return v5 !== undefined && v5.maximumPacketSize < this.limits.maxPacketSize ? v5.maximumPacketSize : this.limits.maxPacketSize;
  }

  /** Wire flush listener: this tick's writes went to the kernel; the budget learns what is left. */
  flushed(): void {
    if (this.state !== State.Closed || this.counted > 0) this.hooks.budget?.settle(this, this.wire.unsentBytes());
  }

  /** BudgetMember: what the wire holds unsent now. */
  unsentBytes(): number {
    return this.wire.unsentBytes();
  }

  /** WireSink: bytes from the client. */
  data(chunk: Buffer): void {
    if (this.state === State.Closed) return;
    if (this.hooks.traffic) this.hooks.traffic.bytesIn += chunk.length;
    if (this.held || this.pausedBy !== 0) {
      // Reading is paused: keep what the wire had already delivered (a paused WebSocket still
      // hands over the frames it had received), in order, until resume(); O(1) per chunk.
      (this.held ??= new HeldInput()).push(chunk);
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
    const rate = this.rate;
    while (from < chunk.length) {
      let budget = this.requests ? this.requests.capacity() : BATCH_BEFORE_CONNACK;
      if (rate) budget = Math.min(budget, rate.budget(Date.now()));
      const turn = inputTurns.allowance(this);
      if (turn <= 0) {
        // The turn, or this connection's slice of it, is spent: the rest waits, the wire paused.
        (this.held ??= new HeldInput()).unshift(from === 0 ? chunk : chunk.subarray(from));
        this.pause(PAUSE_TURN);
        inputTurns.wait(this);
        return;
      }
      let publishes = 0;
      const parsedBefore = this.parsed;
      let end = from;
      /** [start, end) of each whole QoS 0/1 PUBLISH of the batch, for the fast path; undefined: none. */
      let marks: number[] | undefined;
      const connected = this.state === State.Connected;
      for (let n = 0; end < chunk.length && n < budget && publishes < turn; n++) {
        const start = end;
        const first = chunk[start];
        // A packet that starts here (not the tail of one begun in an earlier chunk).
        const whole = this.guard.atBoundary;
        if ((first & 0xf0) === 0x30) publishes++; // a PUBLISH's first byte (approximate where a packet spans chunks)
        end = this.guard.next(chunk, end);
        if (end < 0) {
          const violation = this.guard.violation ?? 'malformed packet';
          const code = violation.startsWith('packet of') ? ReasonCode.PacketTooLarge : ReasonCode.MalformedPacket;
          return this.fail(code, violation, 'destroy');
        }
        if (connected && whole && (first & 0xf4) === 0x30 && this.guard.atBoundary) (marks ??= []).push(start, end);
      }
      if (marks === undefined) {
        if (!this.parseSlow(chunk, from, end)) return void inputTurns.spend(this, publishes);
      } else if (!this.parseBatch(chunk, from, end, marks)) return void inputTurns.spend(this, publishes);
      inputTurns.spend(this, publishes);
      if (this.state === State.Closed) return;
      this.flushControl();
      this.checkOutput();
      if (rate) this.chargeRate(rate, this.parsed - parsedBefore, end - from);
      from = end;
      if (this.readPaused && from < chunk.length) {
        (this.held ??= new HeldInput()).unshift(chunk.subarray(from));
        return;
      }
    }
  }

  /**
   * Dispatches the packets of `chunk[from, end)`: the whole QoS 0/1 PUBLISHes at `marks`
   * (start, end pairs) decoded by hand when they are plain (publish-fast-path.ts), every other
   * packet and whatever the fast path declines handed to mqtt-packet, in stream order.
   * mqtt-packet holds nothing at a mark: every byte before it ended a packet.
   * False when the connection is closed after it.
   */
  private parseBatch(chunk: Buffer, from: number, end: number, marks: number[]): boolean {
    const v5 = this.v5 !== undefined;
    let slow = from;
    for (let k = 0; k < marks.length; k += 2) {
      const start = marks[k];
      const packet = parsePublishFast(chunk, start, marks[k + 1], v5);
      if (packet === undefined) continue; // mqtt-packet decides (and reports what is malformed)
      if (slow < start && !this.parseSlow(chunk, slow, start)) return false;
      slow = marks[k + 1];
      this.parsed++;
      try {
        this.onPacket(packet, true);
      } catch (err) {
        this.destroy(`malformed packet: ${err instanceof Error ? err.message : String(err)}`);
        return false;
      }
      if (this.state === State.Closed) return false;
    }
    return slow < end ? this.parseSlow(chunk, slow, end) : true;
  }

  /** Hands `chunk[from, end)` to mqtt-packet; false when the connection is closed after it. */
  private parseSlow(chunk: Buffer, from: number, end: number): boolean {
    const parser = (this.parser ??= newParser(this, this.state === State.New ? undefined : parserSettings(this)));
    this.parserUsed = true;
    try {
      this.parserHolds = parser.parse(from === 0 && end === chunk.length ? chunk : chunk.subarray(from, end));
    } catch (err) {
      // A handler that throws on input nobody foresaw closes this connection, never the gate.
      this.destroy(`malformed packet: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
    return this.state !== State.Closed;
  }

  /** Charges a parse batch to the input rates; pauses reading until the buckets refill when one ran dry. */
  private chargeRate(rate: InputRate, packets: number, bytes: number): void {
    const now = Date.now();
    const dry = rate.charge(packets, bytes, now);
    if (dry === undefined || this.pausedBy & PAUSE_RATE || this.state === State.Closed) return;
    this.pause(PAUSE_RATE);
    this.rateTimer = setTimeout(resumeAfterRate, Math.max(1, rate.waitMs(now)), this);
    if (this.hooks.traffic) this.hooks.traffic.ratePauses++;
    this.hooks.rateLimited?.(this, dry, rate.limitOf(dry) as RateLimit);
  }

  /** @internal (the rate timer) Reads again once the buckets have refilled. */
  resumeRate(): void {
    this.rateTimer = undefined;
    if (this.state === State.Closed) return;
    const wait = this.rate ? this.rate.waitMs(Date.now()) : 0;
    if (wait > 0) this.rateTimer = setTimeout(resumeAfterRate, wait, this);
    else this.resume(PAUSE_RATE);
  }

  /**
   * WireSink: the wire refused a message larger than it may buffer and closes itself after
   * this (WebSocket close 1009). An MQTT 5 client is told DISCONNECT 0x95 Packet too large
   * first, as for a packet over maxPacketSize (MQTT 5.0 §4.13); a 3.1.1 client only sees the close.
   */
  tooLarge(reason: string): void {
    if (this.state === State.Closed) return;
    if (this.v5 && this.state === State.Connected) this.sendDisconnect(ReasonCode.PacketTooLarge, reason);
    this.finish(reason);
  }

  /** TurnWaiter: a new turn of the event loop; parse what is held, within its allowance. */
  resumeTurn(): void {
    if (this.state !== State.Closed) this.resume(PAUSE_TURN);
  }

  /** WireSink: the socket has gone. */
  closed(error?: Error): void {
    this.hooks.budget?.release(this);
    this.finish(error ? `connection lost: ${error.message}` : 'connection lost');
  }

  /**
   * @internal (called by the parser, and by the PUBLISH fast path with `vetted`: its
   * properties are ones a PUBLISH may carry, each once, none cut short, so the property
   * checks below cannot fail on it)
   */
  onPacket(packet: mqtt.Packet, vetted = false): void {
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
    const bad = vetted
      ? undefined
      : (propertiesProblem((packet as { properties?: unknown }).properties) ??
        (this.v5 && packet.cmd !== 'connect' ? propertyRulesProblem(packet) : undefined));
    if (bad) {
      const what = `${packet.cmd.toUpperCase()}: ${bad.what}`;
      // Before a CONNACK there is no DISCONNECT (MQTT-3.14.0-1): the connection just closes.
      return this.state === State.New ? this.destroy(what) : this.fail(bad.code, what, 'destroy');
    }
    const handler = this.handlers[packet.cmd];
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
    if (this.hooks.budget) this.hooks.budget.add(this, bytes.length);
    if (this.hooks.traffic) this.hooks.traffic.bytesOut += bytes.length;
    if (this.state === State.Connected) this.checkOutput();
    return true;
  }

  /**
   * Encodes a QoS 0 PUBLISH in this connection's protocol level: `props` go out to an MQTT 5
   * client only (MQTT 5.0 §3.3.2.3). Returns undefined when it cannot be encoded (a topic or
   * property over 65 535 bytes, a packet over the MQTT maximum; callers validate topics).
   */
  encodePublish(topic: string, payload: Buffer | string, props: PublishProperties | undefined): Buffer | undefined {
    try {
      return this.v5 ? encodePublishV5(topic, payload, props) : encodePublishQos0(topic, payload);
    } catch {
      return undefined;
    }
  }

  /**
   * Writes a QoS 0 PUBLISH answering one of this client's requests (mqant replies at QoS 0),
   * whatever the gate's output budget says: replies are bounded by maxInflight per connection.
   * @returns 0 when written; -1 when not (closing, not encodable); else the size, bytes, of a
   *   packet over {@link packetLimit}: nothing is written, the caller answers with an error.
   */
  reply(topic: string, payload: Buffer | string, props?: PublishProperties): number {
    if (this.state !== State.Connected) return this.miss();
    const bytes = this.encodePublish(topic, payload, props);
    if (bytes === undefined) {
      // Over the MQTT maximum of 268 435 455 bytes (or a topic too long): report its size.
      const size = payloadSize(payload);
      return size > this.packetLimit ? size + topic.length + 5 : this.miss();
    }
    if (bytes.length > this.packetLimit) return bytes.length;
    this.writePublish(bytes);
    return 0;
  }

  /**
   * Writes a QoS 0 PUBLISH the client did not ask for (mqant pushes at QoS 0, no
   * subscription needed); see {@link pushEncoded} for when it is dropped.
   * Returns false when nothing was written.
   */
  push(topic: string, payload: Buffer, props?: PublishProperties): boolean {
    const bytes = this.state === State.Connected ? this.encodePublish(topic, payload, props) : undefined;
    if (bytes !== undefined) return this.pushEncoded(bytes);
    this.miss();
    return false;
  }

  /**
   * Writes a push already encoded for this connection's protocol level (a broadcast encodes
   * once per level and shares the Buffer, see push-encoding.ts). Dropped, counted and
   * reported to `hooks.dropped`: when larger than {@link packetLimit} (`too_large`; MQTT 5:
   * MQTT-3.1.2-24), or when what the gate holds for clients is over maxBufferedBytesTotal and
   * this connection holds more than outputHighWaterMark (unsent output plus QoS 1 pushes not
   * acknowledged; `memory`: a client that does not read or acknowledge gets no more pushes to
   * buffer; the budget's sweep closes the largest holders).
   * Returns false when nothing was written.
   */
  pushEncoded(bytes: Buffer): boolean {
    if (this.state !== State.Connected) {
      this.miss();
      return false;
    }
    if (bytes.length > this.packetLimit) return this.drop(bytes.length, 'too_large');
    const budget = this.hooks.budget;
    if (budget !== undefined && budget.total > budget.limit && holding(this) > this.limits.outputHighWaterMark) {
      return this.drop(bytes.length, 'memory');
    }
    return this.writePublish(bytes);
  }

  /** Reports a PUBLISH not written (too large, or memory); returns false. */
  drop(bytes: number, reason: DropReason): false {
    this.lastDrop = reason;
    this.hooks.dropped(this, bytes, reason);
    this.miss();
    return false;
  }

  private writePublish(bytes: Buffer): boolean {
    const sent = this.write(bytes);
    const t = this.hooks.traffic;
    if (t && sent) t.sent++;
    else if (t) t.dropped++;
    return sent;
  }

  /**
   * A QoS 1 push (QoS 1 pushes are delivered at least once): written at once under a packet identifier of the gate's
   * when the inflight window has room, else queued behind it, in order; kept until the
   * client's PUBACK ({@link acked}). `carried` is a push from an earlier connection of the
   * session (a resume): resent with DUP 1 and, when free, its identifier (MQTT-4.4.0-1).
   * Returns false when nothing was kept: not connected, dropped as a push is (see
   * {@link pushEncoded}: over {@link packetLimit}, or `memory`), or refused at maxOutboundQueue /
   * maxBufferedBytes (`outbound.refusal` says which). Counted as sent or dropped.
   */
  publishQos1(topic: string, payload: Buffer, props?: PublishProperties, carried = 0): boolean {
    const t = this.hooks.traffic;
    if (this.outbound) this.outbound.refusal = '';
    if (this.state !== State.Connected) {
      if (t) t.dropped++;
      return false;
    }
    const v5 = this.v5;
    let size: number;
    try {
      size = encodePublishQos1(topic, payload, 1, false, v5 !== undefined, props).length;
    } catch {
      if (t) t.dropped++;
      return false;
    }
    if (size > this.packetLimit) return this.drop(size, 'too_large');
    const budget = this.hooks.budget;
    if (budget !== undefined && budget.total > budget.limit && holding(this) > this.limits.outputHighWaterMark) return this.drop(size, 'memory');
    const out = (this.outbound ??= new OutboundInflight({
      window: Math.min(this.limits.maxOutboundInflight, v5 ? v5.receiveMaximum : 0xffff),
      maxQueue: this.limits.maxOutboundQueue,
      maxBytes: this.limits.maxBufferedBytes,
    }));
    const push = out.admit({ topic, body: payload, properties: props, messageId: carried, dup: carried !== 0 });
    if (push === 'refused') {
      if (t) t.dropped++;
      return false;
    }
    budget?.hold(this, out.bytes);
    if (push !== 'queued') this.writeQos1(push);
    return true;
  }

  /** A PUBACK from the client: frees its identifier and writes the queued QoS 1 pushes the window now has room for. */
  acked(messageId: number): void {
    const out = this.outbound;
    if (!out?.ack(messageId)) return;
    this.hooks.budget?.hold(this, out.bytes);
    for (let p = out.next(); p && this.state === State.Connected; p = out.next()) this.writeQos1(p);
  }

  private writeQos1(p: OutboundPush): void {
    let bytes: Buffer;
    try {
      bytes = encodePublishQos1(p.topic, p.body, p.messageId, p.dup, this.v5 !== undefined, p.properties);
    } catch {
      return; // checked by publishQos1 before it was taken
    }
    if (this.write(bytes) && this.hooks.traffic) this.hooks.traffic.sent++;
  }

  /** Counts a PUBLISH not written; returns -1. */
  private miss(): -1 {
    if (this.hooks.traffic) this.hooks.traffic.dropped++;
    return -1;
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
    if (this.hooks.traffic && reason !== PAUSE_RATE && reason !== PAUSE_TURN) this.hooks.traffic.pauses++; // rate pauses: ratePauses
    this.wire.pause();
  }

  /** Clears one reason to pause; reading resumes when none is left (never once frozen). */
  resume(reason = PAUSE_REQUESTS): void {
    if (!(this.pausedBy & reason)) return;
    this.pausedBy &= ~reason;
    if (this.pausedBy !== 0 || this.frozen) return;
    this.lastSeen = Date.now();
    const held = this.held;
    if (held) {
      // One chunk at a time until reading pauses again (feed puts the rest of that one back in front).
      for (let c = held.shift(); c !== undefined; c = held.shift()) {
        this.feed(c);
        if (this.state === State.Closed) return;
        if (this.pausedBy !== 0) break;
      }
      if (held.empty) this.held = undefined;
    }
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
    this.hooks.budget?.release(this); // what the socket held is discarded
    this.finish(reason);
  }

  private finish(reason: string): void {
    if (this.state === State.Closed) return;
    this.state = State.Closed;
    if (this.rateTimer) clearTimeout(this.rateTimer);
    this.rateTimer = undefined;
    if (this.pausedBy & PAUSE_TURN) inputTurns.forget(this);
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
    if (this.state === State.Connected && this.parser !== undefined) {
      // Not mid-packet: mqtt-packet keeps a packet's fixed header and length in its state, not in the bytes it holds.
      if (this.parserUsed || this.parserHolds !== 0 || !this.guard.atBoundary) this.parserUsed = false;
      else this.parser = undefined; // idle: made again, with the same settings, by the next packet that needs it
    }
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
      this.fail(ReasonCode.KeepAliveTimeout, 'keepalive timeout (MQTT-3.1.2-24; MQTT 5: MQTT-3.1.2-22)');
    }
  }
}

const PROTOCOL_V4 = { protocolVersion: 4 } as const;
const PROTOCOL_V5 = { protocolVersion: 5 } as const;

// Shared parser listeners: no closures per connection.
const CONNECTION = Symbol('connection');
type ParserWithConnection = ReturnType<typeof mqtt.parser> & { [CONNECTION]: MqttConnection };

/** A parser of `conn`'s packets; `settings` as mqtt-packet keeps them after a CONNECT (undefined: before one). */
function newParser(conn: MqttConnection, settings: ParserSettings | undefined): ParserWithConnection {
  const parser = packetParser(settings) as ParserWithConnection;
  parser[CONNECTION] = conn;
  parser.on('packet', onParserPacket);
  parser.on('error', onParserError);
  return parser;
}

/**
 * What a released parser knew of its CONNECT: past the CONNECT mqtt-packet reads only
 * `protocolVersion` and `bridgeMode` of it, and the connect handler refuses bridges.
 * One shared object per protocol level.
 */
type ParserSettings = { readonly protocolVersion: number };
const SETTINGS: Record<number, ParserSettings> = {};
function parserSettings(conn: MqttConnection): ParserSettings {
  return (SETTINGS[conn.protocolVersion] ??= Object.freeze({ protocolVersion: conn.protocolVersion }));
}
function onParserPacket(this: ParserWithConnection, packet: mqtt.Packet): void {
  const conn = this[CONNECTION];
  conn.parsed++;
  conn.onPacket(packet);
}
function resumeAfterRate(conn: MqttConnection): void {
  conn.resumeRate();
}
function onParserError(this: ParserWithConnection, err: Error): void {
  this[CONNECTION].onParseError(err);
}
