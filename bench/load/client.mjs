// The load generator's MQTT 3.1.1 client (mqtt-packet parser over net sockets or ws), the
// hand-encoded PUBLISH every mode sends, and openMany (many clients at once). Every load mode
// (load/modes/*.mjs) is built on this.
import { connect as netConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const mqtt = require('mqtt-packet');
const WebSocket = require('ws');

const V4 = { protocolVersion: 4 };
const V5 = { protocolVersion: 5 };
export const PINGREQ = mqtt.generate({ cmd: 'pingreq' }, V4);
const DISCONNECT = mqtt.generate({ cmd: 'disconnect' }, V4);
let clientSeq = 0;
let addrSeq = 0;
/** Source addresses rotate over 127.0.0.2-127.0.0.201 so TIME_WAIT never exhausts ephemeral ports. */
const nextLocalAddress = () => `127.0.0.${2 + (addrSeq++ % 200)}`;
export const now = () => performance.now();

function writeVarint(buf, o, n) {
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    buf[o++] = byte;
  } while (n > 0);
  return o;
}
const varintLength = (n) => (n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4);

/** A QoS 0/1 PUBLISH, encoded by hand (the same bytes mqtt-packet.generate makes). */
export function encodePublish(topic, payload, qos, messageId) {
  const tlen = Buffer.byteLength(topic);
  const rem = 2 + tlen + (qos > 0 ? 2 : 0) + payload.length;
  const buf = Buffer.allocUnsafe(1 + varintLength(rem) + rem);
  buf[0] = 0x30 | (qos << 1);
  let o = writeVarint(buf, 1, rem);
  buf.writeUInt16BE(tlen, o);
  o += 2;
  o += buf.write(topic, o);
  if (qos > 0) {
    buf.writeUInt16BE(messageId, o);
    o += 2;
  }
  payload.copy(buf, o);
  return buf;
}
/**
 * An MQTT 5 QoS 0/1 PUBLISH with a Response Topic (0x08) and Correlation Data (0x09), the way
 * `mosquitto_rr -V 5` and MQTT.js ask for a reply; encoded by hand (checked against mqtt-packet).
 */
export function encodePublishV5(topic, payload, qos, messageId, responseTopic, correlationData) {
  const tlen = Buffer.byteLength(topic);
  const rlen = Buffer.byteLength(responseTopic);
  const plen = 3 + rlen + 3 + correlationData.length;
  const rem = 2 + tlen + (qos > 0 ? 2 : 0) + varintLength(plen) + plen + payload.length;
  const buf = Buffer.allocUnsafe(1 + varintLength(rem) + rem);
  buf[0] = 0x30 | (qos << 1);
  let o = writeVarint(buf, 1, rem);
  buf.writeUInt16BE(tlen, o);
  o += 2;
  o += buf.write(topic, o);
  if (qos > 0) {
    buf.writeUInt16BE(messageId, o);
    o += 2;
  }
  o = writeVarint(buf, o, plen);
  buf[o++] = 0x08;
  buf.writeUInt16BE(rlen, o);
  o += 2;
  o += buf.write(responseTopic, o);
  buf[o++] = 0x09;
  buf.writeUInt16BE(correlationData.length, o);
  o += 2;
  o += correlationData.copy(buf, o);
  payload.copy(buf, o);
  return buf;
}

// Self-check against mqtt-packet once.
{
  const a = encodePublish('echo/HD_echo/1', Buffer.from('{"a":1}'), 1, 7);
  const b = mqtt.generate(
    { cmd: 'publish', topic: 'echo/HD_echo/1', payload: Buffer.from('{"a":1}'), qos: 1, messageId: 7, retain: false, dup: false },
    V4,
  );
  if (!a.equals(b)) throw new Error('encodePublish differs from mqtt-packet.generate');
  const cd = Buffer.from([0, 0, 0, 7]);
  const a5 = encodePublishV5('echo/HD_echo', Buffer.from('{"a":1}'), 1, 7, 'r/c1', cd);
  const b5 = mqtt.generate(
    {
      cmd: 'publish',
      topic: 'echo/HD_echo',
      payload: Buffer.from('{"a":1}'),
      qos: 1,
      messageId: 7,
      retain: false,
      dup: false,
      properties: { responseTopic: 'r/c1', correlationData: cd },
    },
    V5,
  );
  if (!a5.equals(b5)) throw new Error('encodePublishV5 differs from mqtt-packet.generate');
}

/**
 * One MQTT client over TCP or WebSocket, MQTT 3.1.1 or (`opts.protocolVersion: 5`) MQTT 5.
 * `onPacket(packet)` sees every packet after CONNACK. `connect()` resolves on CONNACK 0
 * (rejects otherwise, or after `timeoutMs`).
 */
export class Client {
  constructor(target, opts = {}) {
    this.target = target;
    this.clientId = opts.clientId ?? `b${process.pid}-${++clientSeq}`;
    this.keepalive = opts.keepalive ?? 600;
    this.onPacket = opts.onPacket ?? (() => {});
    this.onClose = opts.onClose ?? (() => {});
    this.closed = false;
    this.protocolVersion = opts.protocolVersion ?? 4;
    this.parser = mqtt.parser(this.protocolVersion === 5 ? V5 : V4);
    this.parser.on('packet', (p) => this.packet(p));
    this.parser.on('error', (err) => this.fail(new Error(`parse error: ${err.message}`)));
  }

  connect(timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      this.resolveConnect = resolve;
      this.rejectConnect = reject;
      this.timer = setTimeout(() => this.fail(new Error('CONNACK timeout')), timeoutMs);
      const v = this.protocolVersion;
      const hello = mqtt.generate(
        { cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clean: true, clientId: this.clientId, keepalive: this.keepalive },
        v === 5 ? V5 : V4,
      );
      const localAddress = nextLocalAddress();
      if (this.target.transport === 'ws') {
        const ws = new WebSocket(`ws://127.0.0.1:${this.target.port}/mqtt`, ['mqtt'], { perMessageDeflate: false, localAddress });
        ws.binaryType = 'nodebuffer';
        this.ws = ws;
        ws.on('open', () => ws.send(hello));
        ws.on('message', (data) => this.parser.parse(data));
        ws.on('error', (err) => this.fail(err));
        ws.on('close', () => this.gone());
      } else {
        const s = netConnect({ host: '127.0.0.1', port: this.target.port, localAddress, noDelay: true });
        this.socket = s;
        s.on('connect', () => s.write(hello));
        s.on('data', (chunk) => {
          s.cork();
          this.parser.parse(chunk);
          s.uncork();
        });
        s.on('error', (err) => this.fail(err));
        s.on('close', () => this.gone());
      }
    });
  }

  packet(p) {
    if (this.resolveConnect) {
      if (p.cmd !== 'connack') return this.fail(new Error(`expected CONNACK, got ${p.cmd}`));
      const code = p.returnCode ?? p.reasonCode;
      if (code !== 0) return this.fail(new Error(`CONNACK return code ${code}`));
      clearTimeout(this.timer);
      const r = this.resolveConnect;
      this.resolveConnect = this.rejectConnect = undefined;
      r(this);
      return;
    }
    this.onPacket(p);
  }

  send(buf) {
    if (this.closed) return;
    if (this.ws) this.ws.send(buf);
    else this.socket.write(buf);
  }

  fail(err) {
    this.error ??= err;
    if (this.rejectConnect) {
      clearTimeout(this.timer);
      const r = this.rejectConnect;
      this.resolveConnect = this.rejectConnect = undefined;
      r(err);
    }
    this.destroy();
  }

  gone() {
    if (this.closed && this.goneCalled) return;
    this.goneCalled = true;
    this.closed = true;
    if (this.rejectConnect) this.fail(this.error ?? new Error('closed before CONNACK'));
    this.onClose(this);
  }

  /** DISCONNECT and close. */
  end() {
    if (this.closed) return;
    this.send(DISCONNECT);
    this.closed = true;
    if (this.ws) this.ws.close();
    else this.socket.end();
  }

  /** Drops the connection without DISCONNECT (a network failure). */
  destroy() {
    this.closed = true;
    if (this.ws) this.ws.terminate();
    else this.socket?.destroy();
  }

  subscribe(topics) {
    return new Promise((resolve, reject) => {
      const prev = this.onPacket;
      const t = setTimeout(() => reject(new Error('SUBACK timeout')), 10000);
      this.onPacket = (p) => {
        if (p.cmd === 'suback') {
          clearTimeout(t);
          this.onPacket = prev;
          resolve();
        } else prev(p);
      };
      this.send(mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: topics.map((topic) => ({ topic, qos: 0 })) }, V4));
    });
  }
}

/** Opens `n` clients, at most `concurrency` connecting at once. Failures are counted, not thrown. */
export async function openMany(target, n, { concurrency = 200, setup, opts = () => ({}) } = {}) {
  const clients = [];
  const errors = [];
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      const c = new Client(target, opts(i));
      try {
        await c.connect();
        if (setup) await setup(c, i);
        clients.push(c);
      } catch (err) {
        c.destroy();
        errors.push(String(err?.message ?? err));
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return { clients, failed: errors.length, errorSample: [...new Set(errors)].slice(0, 5) };
}
