/**
 * How large a WebSocket message the gate reads, and what it does with a larger one.
 *
 * A WebSocket frame is not an MQTT packet: a client or a proxy may put several packets in one
 * message, or one packet over several (MQTT-6.0.0-2: the receiver must not assume packets are
 * aligned on frame boundaries). So the message bound is what the connection may take in at
 * once, not maxPacketSize; the MQTT parser applies maxPacketSize to each packet, as on TCP
 * (protocol/frame-guard.ts), with the same DISCONNECT 0x95 (MQTT 5) or close (3.1.1).
 */
import type { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';

/** The limits a connection's input is bounded by (the gate's resolved options). */
export interface InputLimits {
  /** Largest packet, bytes. */
  maxPacketSize: number;
  /** Bytes per second read from one connection; `burst` is what it may send at once. */
  byteRate: { burst: number } | false;
  /** Unsent bytes a connection may hold the other way (its output bound). */
  maxBufferedBytes: number;
}

/** ws reads maxPayload as a 32-bit signed integer: a larger value would turn the bound off. */
const WS_MAX_PAYLOAD = 2 ** 31 - 1;

/**
 * Largest WebSocket message (one frame, or the fragments of one message together) the gate
 * buffers, bytes: what the connection may send at once, the byteRate burst (2 MiB by default:
 * 32 packets of the default maxPacketSize), or maxBufferedBytes (4 MiB) when byteRate is off;
 * never less than maxPacketSize, so that any legal packet fits one frame; at most 2^31 - 1.
 * A larger message is refused when its frame header announces it, before its payload is read:
 * see {@link onMessageTooLarge}.
 */
export function webSocketMessageBound(limits: InputLimits): number {
  const atOnce = limits.byteRate === false ? limits.maxBufferedBytes : Math.ceil(limits.byteRate.burst);
  return Math.min(WS_MAX_PAYLOAD, Math.max(limits.maxPacketSize, atOnce));
}

/** The close reason of a connection whose client sent a message over the bound (metrics: `too_large`). */
export function messageTooLargeReason(bound: number): string {
  return `WebSocket message over ${bound} bytes exceeds the connection's input bound`;
}

/** ws's error code for a message over maxPayload; ws then sends close 1009 (RFC 6455 §7.4.1: message too big). */
const MESSAGE_TOO_LARGE = 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH';

const TOO_LARGE_SINK = Symbol('tooLargeSink');
const TOO_LARGE_REASON = Symbol('tooLargeReason');
interface TooLargeReceiver extends EventEmitter {
  [TOO_LARGE_SINK]: { tooLarge?(reason: string): void };
  [TOO_LARGE_REASON]: string;
}
/** Shared by every receiver (no closure per connection). */
function onReceiverError(this: TooLargeReceiver, err: Error & { code?: string }): void {
  if (err.code === MESSAGE_TOO_LARGE) this[TOO_LARGE_SINK].tooLarge?.(this[TOO_LARGE_REASON]);
}

/**
 * Calls `sink.tooLarge(reason)` when `ws` refuses a message over its maxPayload, just before ws
 * sends close 1009: the last moment a data frame may still go out (RFC 6455 §5.5.1: none after
 * a Close), so an MQTT 5 client can be told DISCONNECT 0x95 first. ws has no public hook there;
 * its receiver (`_receiver`, an EventEmitter in every ws 8 release) emits the error to ws's own
 * listener, which sends the Close, and a listener put before it runs first. Without a
 * receiver (another ws) `tooLarge` is never called and the client gets close 1009 alone.
 */
export function onMessageTooLarge(ws: WebSocket, sink: { tooLarge?(reason: string): void }, reason: string): void {
  const receiver = (ws as unknown as { _receiver?: TooLargeReceiver | null })._receiver;
  if (!receiver) return;
  receiver[TOO_LARGE_SINK] = sink;
  receiver[TOO_LARGE_REASON] = reason;
  receiver.prependListener('error', onReceiverError);
}
