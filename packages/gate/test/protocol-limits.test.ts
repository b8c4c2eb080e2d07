/**
 * maxPacketSize and malformed input (reference/mqtt-layer.md §6.3 items 9 and 12): an
 * oversize packet closes the connection as soon as its length is known, a packet at the
 * limit passes, and bad bytes close only the connection that sent them.
 */
import type * as mqtt from 'mqtt';
import * as mqttPacket from 'mqtt-packet';
import type { IPublishPacket } from 'mqtt-packet';
import type { SessionData } from '@mqgate/rpc';
import { Connections } from './helpers/connections';
import { startGate, request, mqttOpts, VERSIONS, type Harness } from './helpers/harness';
import { closeOf, within } from './helpers/waiters';

const MAX = 1024;

/** A QoS 0 PUBLISH of exactly `size` bytes on the wire (fixed header included). */
function publishOfSize(topic: string, size: number): Buffer {
  let payloadLength = size - 5 - Buffer.byteLength(topic);
  for (;;) {
    const bytes = mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.alloc(payloadLength, 0x61), qos: 0, dup: false, retain: false });
    if (bytes.length === size) return bytes;
    payloadLength += size - bytes.length;
  }
}

/** A QoS 0 PUBLISH whose topic is exactly these bytes, and an empty payload (short topics only). */
function publishWithTopicBytes(topic: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x30, 2 + topic.length, 0x00, topic.length]), topic]);
}

/** Remaining Length encoding (MQTT 3.1.1 §2.2.3). */
function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

let h: Harness;
const conns = new Connections();
/** Handler calls by request topic. */
const calls = new Map<string, number>();

beforeAll(async () => {
  h = await startGate({ maxPacketSize: MAX });
  await h.serve('svc', async (fn, args) => {
    const topic = (args[0] as SessionData).topic;
    calls.set(topic, (calls.get(topic) ?? 0) + 1);
    if (fn === 'HD_size') return Buffer.isBuffer(args[1]) ? args[1].length : -1;
    return fn === 'HD_echo' ? args[1] : null;
  });
});

afterEach(() => conns.closeAll());

afterAll(() => h.stop());

const openRaw = (clientId: string) => conns.connectedRaw(h.tcpPort, clientId);
const openWs = (clientId: string) => conns.connectedWs(h.wsUrl, clientId);
const openMqtt = (opts: mqtt.IClientOptions, url = h.tcpUrl) => conns.mqtt(url, opts);

describe('maxPacketSize over TCP', () => {
  test('a PUBLISH of 2000 bytes closes the connection and is not dispatched', async () => {
    const raw = await openRaw('big');
    const topic = 'svc/HD_size/big';
    raw.sendBytes(publishOfSize(topic, 2000));
    await within(raw.closed, 2000, 'close on an oversize packet');
    expect(raw.packets).toEqual([]);
    expect(calls.get(topic)).toBeUndefined();
  });

  test('a packet exactly at the limit is accepted and dispatched; one byte more closes', async () => {
    const raw = await openRaw('at-limit');
    const atLimit = publishOfSize('svc/HD_size/at', MAX);
    expect(atLimit.length).toBe(MAX);
    raw.sendBytes(atLimit);
    const reply = (await within(raw.next('publish'), 2000, 'reply at the limit')) as IPublishPacket;
    expect(reply.topic).toBe('svc/HD_size/at');
    expect(JSON.parse(reply.payload.toString()).Result).toBe(MAX - 5 - 'svc/HD_size/at'.length);

    const over = publishOfSize('svc/HD_size/over', MAX + 1);
    expect(over.length).toBe(MAX + 1);
    raw.sendBytes(over);
    await within(raw.closed, 2000, 'close one byte over the limit');
    expect(calls.get('svc/HD_size/over')).toBeUndefined();
  });

  test('a declared 10 MB packet is refused from its header: closed after 100 bytes, nothing more sent', async () => {
    const raw = await openRaw('huge');
    const header = Buffer.concat([Buffer.from([0x30]), remainingLength(10 * 1024 * 1024)]);
    const first = Buffer.concat([header, Buffer.from([0x00, 0x0e]), Buffer.from('svc/HD_size/10'), Buffer.alloc(100, 0x61)]).subarray(0, 100);
    expect(first.length).toBe(100);
    raw.sendBytes(first);
    // The gate must not wait for the other 10 MB before closing.
    await within(raw.closed, 2000, 'close without the rest of the packet');
    expect(raw.packets).toEqual([]);
  });

  test('the declared size is checked even when the header arrives one byte at a time', async () => {
    const raw = await openRaw('huge-bytewise');
    const header = Buffer.concat([Buffer.from([0x30]), remainingLength(5000)]);
    for (const byte of header) raw.sendBytes(Buffer.from([byte]));
    await within(raw.closed, 2000, 'close');
  });

  test('a CONNECT larger than the limit closes the connection before CONNACK', async () => {
    const raw = await conns.raw(h.tcpPort);
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'x'.repeat(MAX + 10), keepalive: 60 });
    await within(raw.closed, 2000, 'close');
    expect(raw.packets).toEqual([]);
  });

  test.each(VERSIONS)('MQTT.js level %i: requests below the limit work, an oversize one closes the client', async (v) => {
    const c = await openMqtt({ ...mqttOpts(v), clientId: `mqttjs-size-${v}` });
    expect((await within(request(c, 'svc/HD_echo/small', '{"small":1}'), 2000, 'reply')).Result).toEqual({ small: 1 });
    const closed = closeOf(c);
    c.publish('svc/HD_size/mqttjs-big', Buffer.alloc(2 * MAX, 0x62));
    await within(closed, 2000, 'close');
    expect(calls.get('svc/HD_size/mqttjs-big')).toBeUndefined();
  });
});

describe('malformed input closes that connection only', () => {
  test.each([
    ['a Remaining Length of 5 bytes', Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f])],
    ['a PUBLISH with both QoS bits set', Buffer.from([0x36, 0x07, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x00, 0x01])],
    ['a PUBREL with reserved flags 0000', Buffer.from([0x60, 0x02, 0x00, 0x01])],
    ['a SUBSCRIBE with reserved flags 0000', Buffer.from([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00])],
    ['packet type 0 (reserved)', Buffer.from([0x00, 0x00])],
    ['packet type 15 (reserved in 3.1.1)', Buffer.from([0xf0, 0x00])],
    ['a PUBLISH whose topic length runs past the packet', Buffer.from([0x30, 0x03, 0x00, 0x10, 0x61])],
    // MQTT-1.5.3-1: ill-formed UTF-8 (here 0xff 0xfe 0xfd, and an encoded surrogate U+D800) MUST close.
    ['a PUBLISH topic that is not UTF-8', Buffer.from([0x30, 0x05, 0x00, 0x03, 0xff, 0xfe, 0xfd])],
    [
      'a PUBLISH topic holding an encoded surrogate',
      publishWithTopicBytes(Buffer.concat([Buffer.from('svc/HD_echo/'), Buffer.from([0xed, 0xa0, 0x80])])),
    ],
    // MQTT-1.5.3-2, MQTT-4.7.3-2: U+0000 in a topic MUST close.
    ['a PUBLISH topic holding U+0000', publishWithTopicBytes(Buffer.from('svc/HD_echo/a\u0000b'))],
  ])('%s', async (_n, bytes) => {
    const bystanders = await Promise.all(VERSIONS.map((v) => openMqtt({ ...mqttOpts(v), clientId: `bystander-${v}` })));
    const bystanderWs = await openWs('bystander-ws');
    const raw = await openRaw('malformed');
    raw.sendBytes(bytes);
    await within(raw.closed, 1000, 'close of the sender');
    for (const c of bystanders) {
      expect((await within(request(c, 'svc/HD_echo/still', '{"alive":1}'), 2000, 'bystander reply')).Result).toEqual({ alive: 1 });
      expect(c.connected).toBe(true);
    }
    bystanderWs.send({ cmd: 'pingreq' });
    await within(bystanderWs.next('pingresp'), 2000, 'bystander PINGRESP');
  });

  test('malformed bytes as the very first packet close the connection', async () => {
    const raw = await conns.raw(h.tcpPort);
    raw.sendBytes(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]));
    await within(raw.closed, 2000, 'close');
    expect(raw.packets).toEqual([]);
  });

  test('a CONNECT with protocol name "FOO" is refused and closed', async () => {
    const raw = await conns.raw(h.tcpPort);
    raw.sendBytes(Buffer.from([0x10, 0x0c, 0x00, 0x03, 0x46, 0x4f, 0x4f, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61]));
    await within(raw.closed, 2000, 'close');
    expect(raw.packets.filter((p) => p.cmd === 'connack' && (p as { returnCode: number }).returnCode === 0)).toEqual([]);
  });
});

describe('maxPacketSize over WebSocket', () => {
  test('a packet bigger than maxPacketSize in one message closes that WebSocket at once, as on TCP; another one keeps working', async () => {
    const bystander = await openWs('ws-bystander');
    const ws = await openWs('ws-big');
    ws.sendBytes(publishOfSize('svc/HD_size/ws-big', 2000));
    const code = await within(ws.closed, 3000, 'WebSocket close');
    expect(code).toBe(1006); // destroyed by the MQTT parser, no Close frame (the frame bound is far above 2000)
    expect(calls.get('svc/HD_size/ws-big')).toBeUndefined();
    bystander.send({ cmd: 'publish', topic: 'svc/HD_echo/ws-ok', payload: Buffer.from('{"ok":1}'), qos: 0, dup: false, retain: false });
    const reply = (await within(bystander.next('publish'), 2000, 'reply')) as IPublishPacket;
    expect(JSON.parse(reply.payload.toString()).Result).toEqual({ ok: 1 });
  });

  test('a packet exactly at the limit in one WebSocket message is accepted', async () => {
    const ws = await openWs('ws-at-limit');
    ws.sendBytes(publishOfSize('svc/HD_size/ws-at', MAX));
    const reply = (await within(ws.next('publish'), 2000, 'reply')) as IPublishPacket;
    expect(JSON.parse(reply.payload.toString()).Result).toBe(MAX - 5 - 'svc/HD_size/ws-at'.length);
  });

  test('an oversize packet split over small WebSocket messages is refused from its header', async () => {
    const ws = await openWs('ws-split-big');
    const big = publishOfSize('svc/HD_size/ws-split', 5000);
    ws.sendBytes(big.subarray(0, 3));
    ws.sendBytes(big.subarray(3, 500));
    await within(ws.closed, 3000, 'WebSocket close');
    expect(calls.get('svc/HD_size/ws-split')).toBeUndefined();
  });

  test('MQTT.js over WebSocket: an oversize PUBLISH closes the client', async () => {
    const c = await openMqtt({ clientId: 'mqttjs-ws-big' }, h.wsUrl);
    const closed = closeOf(c);
    c.publish('svc/HD_size/mqttjs-ws-big', Buffer.alloc(2 * MAX, 0x62));
    await within(closed, 3000, 'close');
    expect(calls.get('svc/HD_size/mqttjs-ws-big')).toBeUndefined();
  });
});
