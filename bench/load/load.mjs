// The load generator: raw MQTT 3.1.1 clients (mqtt-packet parser, net sockets or ws), driven by
// the runner over IPC. One process; every command runs to completion and answers with numbers.
import { connect as netConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { encodeHistogram, makePayload, newHistogram, serveIpc, sleep } from '../lib/common.mjs';

const require = createRequire(import.meta.url);
const mqtt = require('mqtt-packet');
const WebSocket = require('ws');

const V4 = { protocolVersion: 4 };
const PINGREQ = mqtt.generate({ cmd: 'pingreq' }, V4);
const DISCONNECT = mqtt.generate({ cmd: 'disconnect' }, V4);
let clientSeq = 0;
let addrSeq = 0;
/** Source addresses rotate over 127.0.0.2-127.0.0.201 so TIME_WAIT never exhausts ephemeral ports. */
const nextLocalAddress = () => `127.0.0.${2 + (addrSeq++ % 200)}`;
const now = () => performance.now();

/** A QoS 0/1 PUBLISH, encoded by hand (the same bytes mqtt-packet.generate makes). */
function encodePublish(topic, payload, qos, messageId) {
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
class Client {
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
async function openMany(target, n, { concurrency = 200, setup, opts = () => ({}) } = {}) {
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

const lastLevel = (topic) => topic.slice(topic.lastIndexOf('/') + 1);

/** Topic scheme: `gate` (mqant: reply on the request topic) or `mosquitto` (reply/<cid>/... ). */
function topics(style, clientId) {
  if (style === 'mosquitto') {
    return {
      request: (mod, n) => `${mod}/${clientId}/${n}`,
      subscribe: [`reply/${clientId}/#`],
      broadcast: (n) => `bcast/${clientId}/${n}`,
      pushTopic: 'bcast/all',
    };
  }
  return { request: (mod, n) => `${mod}/HD_${mod}/${n}`, subscribe: null, broadcast: (n) => `echo/HD_broadcast/${n}`, pushTopic: 'bench/push' };
}

function checkReply(p, expected, stats) {
  try {
    const env = JSON.parse(p.payload.toString());
    if (env.Error !== '' || JSON.stringify(env.Result) !== expected) {
      stats.bad++;
      stats.badSample ??= p.payload.toString().slice(0, 200);
    }
  } catch {
    stats.bad++;
    stats.badSample ??= p.payload.toString().slice(0, 200);
  }
}

function connectedSetup(style) {
  return async (c) => {
    const t = topics(style, c.clientId);
    if (t.subscribe) await c.subscribe(t.subscribe);
  };
}

/** Closed loop: `conns` connections × `inflight` requests outstanding each. */
async function rr({ target, conns, inflight, qos, payloadSize, warmupMs, measureMs, style = 'gate' }) {
  const payload = makePayload(payloadSize);
  const expected = JSON.stringify(JSON.parse(payload.toString()));
  const hist = newHistogram();
  const stats = { bad: 0, badSample: undefined };
  let phase = 'warmup';
  let counted = 0;
  let lateClose = 0;
  const { clients, failed, errorSample } = await openMany(target, conns, { setup: connectedSetup(style) });
  if (clients.length === 0) throw new Error(`no connection: ${errorSample.join('; ')}`);
  let outstanding = 0;
  let drained;
  for (const c of clients) {
    const t = topics(style, c.clientId);
    const pending = new Map();
    let seq = 0;
    let mid = 0;
    let checks = 2;
    const sendOne = () => {
      const n = ++seq;
      mid = (mid % 65535) + 1;
      pending.set(String(n), now());
      outstanding++;
      c.send(encodePublish(t.request('echo', n), payload, qos, mid));
    };
    c.onPacket = (p) => {
      if (p.cmd !== 'publish') return;
      const key = lastLevel(p.topic);
      const t0 = pending.get(key);
      if (t0 === undefined) return;
      pending.delete(key);
      outstanding--;
      if (checks > 0) {
        checks--;
        checkReply(p, expected, stats);
      }
      if (phase === 'measure') {
        hist.recordValue(Math.max(1, Math.round((now() - t0) * 1000)));
        counted++;
      }
      if (phase !== 'drain') sendOne();
      else if (outstanding === 0) drained?.();
    };
    c.onClose = () => {
      if (phase !== 'done') lateClose++;
    };
    for (let i = 0; i < inflight; i++) sendOne();
  }
  await sleep(warmupMs);
  phase = 'measure';
  const t0 = now();
  await sleep(measureMs);
  const elapsed = (now() - t0) / 1000;
  phase = 'drain';
  const c0 = counted;
  if (outstanding > 0) await Promise.race([new Promise((r) => (drained = r)), sleep(3000)]);
  phase = 'done';
  for (const c of clients) c.end();
  await sleep(50);
  return {
    replies: c0,
    seconds: elapsed,
    rate: c0 / elapsed,
    hist: encodeHistogram(hist),
    connections: clients.length,
    failedConnections: failed,
    errorSample,
    lost: outstanding,
    badReplies: stats.bad,
    badSample: stats.badSample,
    closedDuringRun: lateClose,
  };
}

/** Open loop: `rate` requests/s over `conns` connections, due in 1 ms buckets; latency from the due time. */
async function open({ target, conns, rate, qos, payloadSize, warmupMs, measureMs, style = 'gate' }) {
  const payload = makePayload(payloadSize);
  const hist = newHistogram();
  const { clients, failed, errorSample } = await openMany(target, conns, { setup: connectedSetup(style) });
  if (clients.length === 0) throw new Error(`no connection: ${errorSample.join('; ')}`);
  const senders = clients.map((c) => {
    const t = topics(style, c.clientId);
    const pending = new Map();
    let seq = 0;
    let mid = 0;
    c.onPacket = (p) => {
      if (p.cmd !== 'publish') return;
      const key = lastLevel(p.topic);
      const entry = pending.get(key);
      if (entry === undefined) return;
      pending.delete(key);
      received++;
      if (entry.measured) {
        hist.recordValue(Math.max(1, Math.round((now() - entry.due) * 1000)));
        counted++;
      }
    };
    return {
      pending,
      send(due, measured) {
        const n = ++seq;
        mid = (mid % 65535) + 1;
        pending.set(String(n), { due, measured });
        c.send(encodePublish(t.request('echo', n), payload, qos, mid));
      },
    };
  });
  let received = 0;
  let counted = 0;
  let sent = 0;
  let sentMeasured = 0;
  let rr = 0;
  let maxLagMs = 0;
  const start = now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + measureMs;
  const perMs = rate / 1000;
  let bucket = 0;
  let carry = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const t = now();
      // every bucket whose due time has passed: send its share now (due = bucket start)
      while (start + bucket <= t && start + bucket < end) {
        const due = start + bucket;
        carry += perMs;
        const k = Math.floor(carry);
        carry -= k;
        const measured = due >= measureFrom;
        for (let i = 0; i < k; i++) {
          senders[rr++ % senders.length].send(due, measured);
          sent++;
          if (measured) sentMeasured++;
        }
        maxLagMs = Math.max(maxLagMs, t - due);
        bucket++;
      }
      if (t >= end) return resolve();
      setTimeout(tick, 1);
    };
    tick();
  });
  const deadline = now() + 3000;
  while (received < sent && now() < deadline) await sleep(20);
  for (const c of clients) c.end();
  await sleep(50);
  return {
    rateAsked: rate,
    sent,
    sentMeasured,
    replies: counted,
    rate: counted / (measureMs / 1000),
    lost: sent - received,
    hist: encodeHistogram(hist),
    maxScheduleLagMs: Math.round(maxLagMs * 1000) / 1000,
    connections: clients.length,
    failedConnections: failed,
    errorSample,
  };
}

// ---- idle connections (held across commands) ----
let idlePool = [];
async function idleOpen({ target, count }) {
  const t0 = now();
  const want = count - idlePool.length;
  const { clients, failed, errorSample } = await openMany(target, Math.max(0, want), { concurrency: 256, opts: () => ({ keepalive: 600 }) });
  idlePool.push(...clients);
  const alive = idlePool.filter((c) => !c.closed).length;
  return { open: alive, failed, errorSample, seconds: (now() - t0) / 1000 };
}
async function idleClose() {
  const n = idlePool.length;
  for (const c of idlePool) c.destroy();
  idlePool = [];
  await sleep(200);
  return { closed: n };
}

/** CONNECT→CONNACK per second: `concurrency` loops connect, get CONNACK, DISCONNECT, repeat. */
async function connrate({ target, concurrency, warmupMs, measureMs }) {
  const hist = newHistogram();
  let phase = 'warmup';
  let ok = 0;
  let failed = 0;
  const errors = new Set();
  async function loop() {
    while (phase !== 'done') {
      const c = new Client(target, { keepalive: 60 });
      const t0 = now();
      try {
        await c.connect(10000);
        if (phase === 'measure') {
          hist.recordValue(Math.max(1, Math.round((now() - t0) * 1000)));
          ok++;
        }
        c.end();
      } catch (err) {
        if (phase === 'measure') failed++;
        if (errors.size < 5) errors.add(String(err?.message ?? err));
        c.destroy();
        await sleep(5);
      }
    }
  }
  const loops = Array.from({ length: concurrency }, loop);
  await sleep(warmupMs);
  phase = 'measure';
  const t0 = now();
  await sleep(measureMs);
  const elapsed = (now() - t0) / 1000;
  const okAtEnd = ok;
  phase = 'done';
  await Promise.all(loops);
  return { connacks: okAtEnd, seconds: elapsed, rate: okAtEnd / elapsed, failed, errorSample: [...errors], hist: encodeHistogram(hist) };
}

/** Push fan-out: `count` sessions connected; a request makes the server push to all; time to the last. */
async function fanout({ target, count, rounds, style = 'gate' }) {
  const recv = { n: 0, done: undefined, t0: 0, last: 0, hist: null };
  const t0open = now();
  const { clients, failed, errorSample } = await openMany(target, count, {
    concurrency: 256,
    opts: () => ({ keepalive: 600 }),
    setup: async (c) => {
      const t = topics(style, c.clientId);
      if (style === 'mosquitto') await c.subscribe([t.pushTopic]);
      c.onPacket = (p) => {
        if (p.cmd !== 'publish' || p.topic !== t.pushTopic) return;
        const dt = now() - recv.t0;
        recv.hist?.recordValue(Math.max(1, Math.round(dt * 1000)));
        recv.last = Math.max(recv.last, dt);
        if (++recv.n === recv.expect) recv.done?.();
      };
    },
  });
  const openSeconds = (now() - t0open) / 1000;
  const trigger = new Client(target, { keepalive: 600 });
  await trigger.connect();
  const tt = topics(style, trigger.clientId);
  if (tt.subscribe) await trigger.subscribe(tt.subscribe);
  const results = [];
  await sleep(300);
  for (let r = 1; r <= rounds; r++) {
    recv.n = 0;
    recv.last = 0;
    recv.expect = clients.length;
    recv.hist = newHistogram();
    const done = new Promise((resolve) => (recv.done = resolve));
    recv.t0 = now();
    trigger.send(encodePublish(tt.broadcast(r), Buffer.from('{}'), 0, 0));
    const timedOut = await Promise.race([done.then(() => false), sleep(10000).then(() => true)]);
    results.push({
      received: recv.n,
      expected: clients.length,
      lastMs: Math.round(recv.last * 1000) / 1000,
      p50Ms: recv.hist.totalCount ? recv.hist.getValueAtPercentile(50) / 1000 : null,
      timedOut,
    });
    if (timedOut) break;
    await sleep(200);
  }
  trigger.end();
  for (const c of clients) c.destroy();
  await sleep(200);
  return { sessions: clients.length, failedConnections: failed, errorSample, openSeconds, rounds: results };
}

// ---- bound sessions with RedisStorage (held across commands) ----
let sessPool = [];
/** Sends one request on `c` and resolves with the parsed envelope. */
function request(c, topic, body, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const prev = c.onPacket;
    const t = setTimeout(() => {
      c.onPacket = prev;
      reject(new Error(`no reply on ${topic}`));
    }, timeoutMs);
    c.onPacket = (p) => {
      if (p.cmd === 'publish' && p.topic === topic) {
        clearTimeout(t);
        c.onPacket = prev;
        try {
          resolve(JSON.parse(p.payload.toString()));
        } catch (err) {
          reject(err);
        }
      } else prev(p);
    };
    c.send(encodePublish(topic, Buffer.from(JSON.stringify(body)), 0, 0));
  });
}
async function login(c, userId, settings) {
  const env = await request(c, 'sess/HD_login/1', { userId });
  if (env.Error) throw new Error(`login: ${env.Error}`);
  let i = 0;
  for (const [key, value] of Object.entries(settings)) {
    const e = await request(c, `sess/HD_set/${++i + 1}`, { key, value });
    if (e.Error) throw new Error(`set: ${e.Error}`);
  }
  return env;
}
async function sessOpen({ target, users, settings, userPrefix }) {
  const t0 = now();
  const { clients, failed, errorSample } = await openMany(target, users, {
    concurrency: 50,
    opts: (i) => ({ clientId: `${userPrefix}${i}`, keepalive: 600 }),
    setup: (c, i) => login(c, `${userPrefix}${i}`, settings ?? {}),
  });
  sessPool.push(...clients);
  return { open: clients.length, failed, errorSample, seconds: (now() - t0) / 1000 };
}
async function sessTraffic({ mode, durationMs, everyMs = 1000 }) {
  if (mode === 'idle') {
    await sleep(durationMs);
    return { mode, sent: 0 };
  }
  // Every client sends once per `everyMs`: a slice of the pool every 50 ms.
  let sent = 0;
  let i = 0;
  let n = 0;
  const perTick = Math.max(1, Math.ceil((sessPool.length * 50) / everyMs));
  const end = now() + durationMs;
  while (now() < end) {
    for (let k = 0; k < perTick && sessPool.length > 0; k++) {
      const c = sessPool[i++ % sessPool.length];
      if (mode === 'ping') c.send(PINGREQ);
      else c.send(encodePublish(`echo/HD_echo/${++n}`, Buffer.from('{"a":1}'), 0, 0));
      sent++;
    }
    await sleep(50);
  }
  return { mode, sent };
}
async function sessDrop() {
  const n = sessPool.length;
  for (const c of sessPool) c.destroy();
  sessPool = [];
  await sleep(300);
  return { dropped: n };
}
/** Reconnect and restore: connect + CONNACK + login (bind restores the stored settings); ms each. */
async function restore({ target, users, userPrefix, expectKeys, concurrency = 10 }) {
  const hist = newHistogram();
  let next = 0;
  let ok = 0;
  let missing = 0;
  const errors = new Set();
  async function worker() {
    while (next < users) {
      const i = next++;
      const t0 = now();
      const c = new Client(target, { clientId: `${userPrefix}${i}`, keepalive: 600 });
      try {
        await c.connect();
        const env = await request(c, 'sess/HD_login/1', { userId: `${userPrefix}${i}` });
        hist.recordValue(Math.max(1, Math.round((now() - t0) * 1000)));
        const got = env.Result?.settings ?? {};
        if (expectKeys.every((k) => k in got)) ok++;
        else missing++;
      } catch (err) {
        if (errors.size < 5) errors.add(String(err?.message ?? err));
      }
      c.end();
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { restored: ok, missing, errorSample: [...errors], hist: encodeHistogram(hist) };
}

serveIpc({ rr, open, idleOpen, idleClose, connrate, fanout, sessOpen, sessTraffic, sessDrop, restore, mem: () => process.memoryUsage() });
process.send({ type: 'ready', pid: process.pid });
