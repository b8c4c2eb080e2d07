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
export const PINGREQ = mqtt.generate({ cmd: 'pingreq' }, V4);
const DISCONNECT = mqtt.generate({ cmd: 'disconnect' }, V4);
let clientSeq = 0;
let addrSeq = 0;
/** Source addresses rotate over 127.0.0.2-127.0.0.201 so TIME_WAIT never exhausts ephemeral ports. */
const nextLocalAddress = () => `127.0.0.${2 + (addrSeq++ % 200)}`;
export const now = () => performance.now();

/** A QoS 0/1 PUBLISH, encoded by hand (the same bytes mqtt-packet.generate makes). */
export function encodePublish(topic, payload, qos, messageId) {
  const tlen = Buffer.byteLength(topic);
  const rem = 2 + tlen + (qos > 0 ? 2 : 0) + payload.length;
  let lenBytes = 1;
  for (let r = rem; r > 127; r = Math.floor(r / 128)) lenBytes++;
  const buf = Buffer.allocUnsafe(1 + lenBytes + rem);
  let o = 0;
  buf[o++] = 0x30 | (qos << 1);
  let r = rem;
  do {
    let byte = r % 128;
    r = Math.floor(r / 128);
    if (r > 0) byte |= 0x80;
    buf[o++] = byte;
  } while (r > 0);
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
// Self-check against mqtt-packet once.
{
  const a = encodePublish('echo/HD_echo/1', Buffer.from('{"a":1}'), 1, 7);
  const b = mqtt.generate({ cmd: 'publish', topic: 'echo/HD_echo/1', payload: Buffer.from('{"a":1}'), qos: 1, messageId: 7, retain: false, dup: false }, V4);
  if (!a.equals(b)) throw new Error('encodePublish differs from mqtt-packet.generate');
}

/**
 * One MQTT client over TCP or WebSocket. `onPacket(packet)` sees every packet after CONNACK.
 * `connect()` resolves on CONNACK 0 (rejects otherwise, or after `timeoutMs`).
 */
export class Client {
  constructor(target, opts = {}) {
    this.target = target;
    this.clientId = opts.clientId ?? `b${process.pid}-${++clientSeq}`;
    this.keepalive = opts.keepalive ?? 600;
    this.onPacket = opts.onPacket ?? (() => {});
    this.onClose = opts.onClose ?? (() => {});
    this.closed = false;
    this.parser = mqtt.parser(V4);
    this.parser.on('packet', (p) => this.packet(p));
    this.parser.on('error', (err) => this.fail(new Error(`parse error: ${err.message}`)));
  }

  connect(timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      this.resolveConnect = resolve;
      this.rejectConnect = reject;
      this.timer = setTimeout(() => this.fail(new Error('CONNACK timeout')), timeoutMs);
      const hello = mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: this.clientId, keepalive: this.keepalive }, V4);
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
      if (p.returnCode !== 0) return this.fail(new Error(`CONNACK return code ${p.returnCode}`));
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
