/**
 * WebSocket frames are not MQTT packets (MQTT-6.0.0-2): over a raw `ws` client at 3.1.1 and
 * 5, several packets in one message are answered in order, one packet over many messages or
 * fragments (boundaries inside the fixed header and the Remaining Length) is read whole, a
 * packet over maxPacketSize gets DISCONNECT 0x95 (MQTT 5) or a close (3.1.1) however it is
 * framed, and a message over the connection's input bound (webSocketMessageBound) is refused
 * from its frame header with close 1009, DISCONNECT 0x95 first at MQTT 5, others unaffected.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, Packet } from 'mqtt-packet';
import type { SessionData } from '@mqgate/rpc';
import { closeReasonLabel } from '../src/ops/metrics';
import { webSocketMessageBound } from '../src/wire/websocket-bound';
import { resolveOptions } from '../src/options';
import { Connections } from './helpers/connections';
import { startGate, type Harness } from './helpers/harness';
import type { RawWs } from './helpers/raw-ws';
import { disconnectOf, nextSession, within } from './helpers/waiters';

const MAX_PACKET = 65_536;
/** byteRate burst of this gate: its WebSocket message bound (webSocketMessageBound). */
const BURST = 256 * 1024;
const LEVELS = [4, 5] as const;

/** A PUBLISH of exactly `size` bytes on the wire at this level (QoS 1 with `messageId`, else QoS 0). */
function publishOfSize(level: 4 | 5, topic: string, size: number, messageId?: number): Buffer {
  const qos = messageId === undefined ? 0 : 1;
  let payloadLength = size - 10 - topic.length;
  for (;;) {
    const packet = { cmd: 'publish', topic, payload: Buffer.alloc(payloadLength, 0x61), qos, messageId, dup: false, retain: false } as const;
    const bytes = mqttPacket.generate(packet as IPublishPacket, { protocolVersion: level });
    if (bytes.length === size) return bytes;
    payloadLength += size - bytes.length;
  }
}

/** The payload length of one encoded PUBLISH (what HD_size answers). */
function payloadLength(level: 4 | 5, bytes: Buffer): number {
  let length = -1;
  const parser = mqttPacket.parser({ protocolVersion: level });
  parser.on('packet', (p: Packet) => (length = (p as IPublishPacket).payload.length));
  parser.parse(bytes);
  return length;
}

let h: Harness;
const conns = new Connections();
const calls = new Map<string, number>();

beforeAll(async () => {
  h = await startGate({ maxPacketSize: MAX_PACKET, byteRate: { perSecond: 4 * 1024 * 1024, burst: BURST } });
  await h.serve('svc', async (fn, args) => {
    const topic = (args[0] as SessionData).topic;
    calls.set(topic, (calls.get(topic) ?? 0) + 1);
    return fn === 'HD_size' && Buffer.isBuffer(args[1]) ? args[1].length : null;
  });
});

afterEach(() => conns.closeAll());

afterAll(() => h.stop());

/** A raw WebSocket peer at this level that got CONNACK 0, and its session id at the gate. */
async function connected(level: 4 | 5, clientId: string): Promise<{ ws: RawWs; sessionId: string }> {
  const ws = await conns.ws(h.wsUrl, { protocolVersion: level });
  const session = nextSession(h);
  ws.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: level, clean: true, clientId, keepalive: 60 }, level);
  expect(((await within(ws.next('connack'), 2000, 'CONNACK')) as IConnackPacket).returnCode ?? 0).toBe(0);
  return { ws, sessionId: (await session).sessionId };
}

/** Every packet the gate sent so far, in wire order, whatever frames carried them. */
const wireOrder = (ws: RawWs): Packet[] => ws.frames.flatMap((f) => f.packets);

const sizeReply = async (ws: RawWs, topic: string): Promise<unknown> => {
  const reply = (await within(
    ws.next('publish', (p) => (p as IPublishPacket).topic === topic),
    3000,
    `reply on ${topic}`,
  )) as IPublishPacket;
  return JSON.parse(reply.payload.toString()).Result;
};

test('the message bound is the byteRate burst (maxBufferedBytes when off), at least maxPacketSize', () => {
  expect(webSocketMessageBound(resolveOptions({}))).toBe(2 * 1024 * 1024);
  expect(webSocketMessageBound(resolveOptions({ byteRate: false }))).toBe(4 * 1024 * 1024);
  expect(webSocketMessageBound(resolveOptions({ maxPacketSize: 8 * 1024 * 1024 }))).toBe(8 * 1024 * 1024);
  expect(webSocketMessageBound(resolveOptions({ byteRate: { perSecond: 1e12, burst: 1e12 } }))).toBe(2 ** 31 - 1);
});

describe.each(LEVELS)('MQTT level %i over a raw WebSocket', (level) => {
  test('two 40 KB PUBLISHes and a PINGREQ in one 80 KB message: PUBACK, PUBACK, PINGRESP in order, both handled', async () => {
    const { ws } = await connected(level, `coalesced-${level}`);
    const [a, b] = [`svc/HD_size/co-a-${level}`, `svc/HD_size/co-b-${level}`];
    const frame = Buffer.concat([publishOfSize(level, a, 40_000, 1), publishOfSize(level, b, 40_000, 2), Buffer.from([0xc0, 0x00])]);
    expect(frame.length).toBeGreaterThan(MAX_PACKET);
    ws.sendBytes(frame);
    await within(ws.next('pingresp'), 3000, 'PINGRESP');
    const acks = wireOrder(ws)
      .filter((p) => p.cmd === 'puback' || p.cmd === 'pingresp')
      .map((p) => (p.cmd === 'puback' ? `puback ${p.messageId}` : p.cmd));
    expect(acks).toEqual(['puback 1', 'puback 2', 'pingresp']);
    expect(await sizeReply(ws, a)).toBe(payloadLength(level, frame.subarray(0, 40_000)));
    expect(await sizeReply(ws, b)).toBe(payloadLength(level, frame.subarray(40_000, 80_000)));
    expect(ws.isOpen).toBe(true);
  });

  test('one PUBLISH over six messages, cut inside the fixed header and the Remaining Length', async () => {
    const { ws } = await connected(level, `spread-${level}`);
    const topic = `svc/HD_size/spread-${level}`;
    const pub = publishOfSize(level, topic, 40_000);
    expect(pub.subarray(1, 4).map((b) => b & 0x80)).toEqual(Buffer.from([0x80, 0x80, 0])); // 3 length bytes
    for (const [from, to] of [
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
      [4, 20_000],
      [20_000, pub.length],
    ])
      ws.sendBytes(pub.subarray(from, to));
    expect(await sizeReply(ws, topic)).toBe(payloadLength(level, pub));
    expect(calls.get(topic)).toBe(1);
  });

  test('one PUBLISH as the fragments of one message, cut inside the fixed header and the Remaining Length, then a PINGREQ', async () => {
    const { ws } = await connected(level, `fragments-${level}`);
    const topic = `svc/HD_size/fragments-${level}`;
    const pub = publishOfSize(level, topic, 40_000);
    ws.sendFragments([pub.subarray(0, 1), pub.subarray(1, 3), pub.subarray(3, 9), pub.subarray(9)]);
    ws.sendFragments([Buffer.from([0xc0]), Buffer.from([0x00])]);
    expect(await sizeReply(ws, topic)).toBe(payloadLength(level, pub));
    await within(ws.next('pingresp'), 3000, 'PINGRESP');
    expect(calls.get(topic)).toBe(1);
  });

  const oversize = (how: string, send: (ws: RawWs, pub: Buffer) => void): void =>
    test(`a 70 000-byte PUBLISH ${how}: ${level === 5 ? 'DISCONNECT 0x95, then close' : 'closed'}; counted too_large`, async () => {
      const { ws, sessionId } = await connected(level, `over-${how.replace(/\W+/g, '-')}-${level}`);
      const reason = disconnectOf(h, sessionId);
      const topic = `svc/HD_size/over-${how.replace(/\W+/g, '-')}-${level}`;
      send(ws, publishOfSize(level, topic, 70_000));
      await within(ws.closed, 3000, 'close');
      const disconnects = wireOrder(ws).filter((p) => p.cmd === 'disconnect') as IDisconnectPacket[];
      expect(disconnects.map((d) => d.reasonCode)).toEqual(level === 5 ? [0x95] : []);
      expect(closeReasonLabel(await within(reason, 2000, 'disconnect event'))).toBe('too_large');
      expect(calls.get(topic)).toBeUndefined();
    });
  oversize('in one message', (ws, pub) => ws.sendBytes(pub));
  oversize('over several messages', (ws, pub) => [0, 2, 3, 30_000, 60_000].forEach((at, i, cuts) => ws.sendBytes(pub.subarray(at, cuts[i + 1]))));
  oversize('as fragments of one message', (ws, pub) => ws.sendFragments([pub.subarray(0, 2), pub.subarray(2, 50_000), pub.subarray(50_000)]));

  test(`a message over the input bound: ${level === 5 ? 'DISCONNECT 0x95, then' : ''} close 1009; another client unaffected`, async () => {
    const bystander = await connected(level, `bystander-${level}`);
    const { ws, sessionId } = await connected(level, `flood-${level}`);
    const reason = disconnectOf(h, sessionId);
    const topic = `svc/HD_size/flood-${level}`;
    // Legal packets, each under maxPacketSize, one byte more than the bound in all.
    const packets = Array.from({ length: Math.ceil(BURST / 60_000) }, () => publishOfSize(level, topic, 60_000));
    ws.sendBytes(Buffer.concat(packets).subarray(0, BURST + 1));
    expect(await within(ws.closed, 3000, 'close')).toBe(1009);
    const disconnects = wireOrder(ws).filter((p) => p.cmd === 'disconnect') as IDisconnectPacket[];
    expect(disconnects.map((d) => d.reasonCode)).toEqual(level === 5 ? [0x95] : []);
    expect(closeReasonLabel(await within(reason, 2000, 'disconnect event'))).toBe('too_large');
    expect(calls.get(topic)).toBeUndefined();
    bystander.ws.sendBytes(Buffer.from([0xc0, 0x00]));
    await within(bystander.ws.next('pingresp'), 2000, 'bystander PINGRESP');
  });
});

/** A WebSocket client over a bare socket: the frames it writes are exactly the bytes given (RFC 6455 §5.2, masked). */
class BareWs {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  readonly ended: Promise<void>;
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    this.ended = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<BareWs> {
    const socket = netConnect(port, '127.0.0.1');
    const ws = new BareWs(socket);
    const key = randomBytes(16).toString('base64');
    socket.write(
      `GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`,
    );
    const head = await ws.read((b) => {
      const end = b.indexOf('\r\n\r\n');
      return end < 0 ? undefined : end + 4;
    });
    expect(head.toString()).toMatch(/^HTTP\/1\.1 101 /);
    return ws;
  }

  /** A masked binary frame header announcing `length` payload bytes, FIN set; the mask is zero (payload sent as is). */
  static header(length: number): Buffer {
    if (length < 126) return Buffer.from([0x82, 0x80 | length, 0, 0, 0, 0]);
    const h = Buffer.alloc(14);
    h[0] = 0x82;
    h[1] = 0x80 | 127;
    h.writeBigUInt64BE(BigInt(length), 2);
    return h; // mask key 0
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The next server frame: `{ opcode, payload }` (server frames are not masked). */
  async frame(): Promise<{ opcode: number; payload: Buffer }> {
    let opcode = 0;
    const frame = await this.read((b) => {
      if (b.length < 2) return undefined;
      opcode = b[0] & 0x0f;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return undefined;
        len = b.readUInt16BE(2);
        off = 4;
      }
      return b.length >= off + len ? off + len : undefined;
    });
    const off = (frame[1] & 0x7f) === 126 ? 4 : 2;
    return { opcode, payload: frame.subarray(off) };
  }

  private async read(complete: (b: Buffer) => number | undefined): Promise<Buffer> {
    for (;;) {
      const n = complete(this.buf);
      if (n !== undefined) {
        const out = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
        return out;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

// Memory stays bounded: the gate refuses from the frame header, never waiting for (buffering) the announced payload.
test('a frame header announcing 1 GiB is refused before its payload: a DISCONNECT 0x95 frame, then Close 1009', async () => {
  const ws = await BareWs.open(h.wsPort);
  const connect = mqttPacket.generate(
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'gib', keepalive: 60 },
    { protocolVersion: 5 },
  );
  ws.write(Buffer.concat([BareWs.header(connect.length), connect]));
  const connack = await within(ws.frame(), 2000, 'CONNACK frame');
  expect(connack.payload[0]).toBe(0x20);
  ws.write(Buffer.concat([BareWs.header(2 ** 30), publishOfSize(5, 'svc/HD_size/gib', 1000)]));
  const disconnect = await within(ws.frame(), 2000, 'DISCONNECT frame');
  expect({ opcode: disconnect.opcode, type: disconnect.payload[0], reasonCode: disconnect.payload[2] }).toEqual({
    opcode: 2,
    type: 0xe0,
    reasonCode: 0x95,
  });
  const close = await within(ws.frame(), 2000, 'Close frame');
  expect({ opcode: close.opcode, code: close.payload.readUInt16BE(0) }).toEqual({ opcode: 8, code: 1009 });
  ws.socket.destroy();
  await ws.ended;
  expect(calls.get('svc/HD_size/gib')).toBeUndefined();
});
