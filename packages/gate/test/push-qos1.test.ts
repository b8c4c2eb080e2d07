/**
 * Outbound QoS 1 pushes (QoS 1 pushes are delivered at least once): `session.send(topic, body, { qos: 1 })` arrives
 * at QoS 1 under a packet identifier of the gate's, the client's PUBACK frees it, at most
 * maxOutboundInflight (MQTT 5: the client's Receive Maximum, MQTT-3.3.4-9) are unacknowledged
 * at once with the rest queued in order and bounded by maxOutboundQueue, and a session that
 * drops with unacknowledged pushes gets them again on resume with DUP 1 and their identifiers
 * (MQTT-4.4.0-1), before the pushes buffered while detached. QoS 0 stays the default. Real
 * sockets: raw mqtt-packet peers (which ack only when told) and MQTT.js at 3.1.1 and 5.
 */
import { connect as netConnect, type Socket } from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import { Session } from '@mqgate/client';
import {
  GATE_VERBS,
  GateFunctions,
  InProcessTransport,
  MemoryUserIndex,
  RpcError,
  UserDirectory,
  gateClient,
  silentLogger,
  type RpcHandler,
  type RpcValue,
  type SessionData,
} from '@mqgate/rpc';
import { Gate, resolveOptions, type GateOptions } from '@mqgate/gate';
import { encodePublishQos1 } from '../src/protocol/encode';
import { startGate, type Harness } from './helpers/harness';
import { RawPeer } from './helpers/raw-peer';
import { RecordingPeer } from './helpers/peer';
import { nextSession, waitUntil } from './helpers/waiters';

/** A raw peer at protocol level 4 or 5 that PUBACKs only when told to. */
class Raw extends RawPeer {
  readonly closed: Promise<void>;
  private constructor(
    readonly socket: Socket,
    readonly version: 4 | 5,
  ) {
    super(`qos1-${Math.random().toString(16).slice(2)}`, version);
    socket.on('data', (d) => this.parser.parse(d));
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
  }

  static open(port: number, version: 4 | 5 = 4): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = netConnect(port, '127.0.0.1', () => resolve(new Raw(s, version)));
      s.once('error', reject);
    });
  }

  sendBytes(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** CONNECT at this peer's level (`properties` for level 5), then CONNACK. */
  open5(properties?: mqttPacket.IConnectPacket['properties']): Promise<mqttPacket.IConnackPacket> {
    return this.version === 5 ? this.connectAt5(properties) : this.connect();
  }

  private async connectAt5(properties: mqttPacket.IConnectPacket['properties']): Promise<mqttPacket.IConnackPacket> {
    this.send(
      { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: `raw5-${Math.random()}`, keepalive: 60, properties },
      5,
    );
    return (await this.next('connack')) as mqttPacket.IConnackPacket;
  }

  puback(messageId: number): void {
    this.send({ cmd: 'puback', messageId }, this.version);
  }

  /** The next PUBLISH on `topic`. */
  async publishOn(topic: string): Promise<mqttPacket.IPublishPacket> {
    return (await this.next('publish', (p) => (p as mqttPacket.IPublishPacket).topic === topic)) as mqttPacket.IPublishPacket;
  }

  /** Takes every PUBLISH received and not yet taken, in order. */
  take(): mqttPacket.IPublishPacket[] {
    const out = this.packets.filter((p): p is mqttPacket.IPublishPacket => p.cmd === 'publish');
    for (const p of out) this.packets.splice(this.packets.indexOf(p), 1);
    return out;
  }

  request(topic: string, body: unknown): void {
    this.send({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(body)), qos: 0, retain: false, dup: false }, this.version);
  }
}

const harnesses: Harness[] = [];
const raws: Raw[] = [];
const peers: RecordingPeer[] = [];

afterEach(async () => {
  for (const r of raws.splice(0)) r.socket.destroy();
  await Promise.all(peers.splice(0).map((p) => p.client.endAsync(true)));
  await Promise.all(harnesses.splice(0).map((h) => h.stop()));
});

async function gate(options: GateOptions = {}): Promise<Harness> {
  const h = await startGate({ websocket: false, ...options });
  harnesses.push(h);
  return h;
}

/** A raw peer connected (level 4 or 5), and its session id on the gate. */
async function raw(h: Harness, version: 4 | 5 = 4, properties?: mqttPacket.IConnectPacket['properties']): Promise<{ r: Raw; sid: string }> {
  const session = nextSession(h);
  const r = await Raw.open(h.tcpPort, version);
  raws.push(r);
  expect((await r.open5(properties)).cmd).toBe('connack');
  return { r, sid: (await session).sessionId };
}

/** Pushes a QoS 0 marker and awaits it: everything the gate wrote before it has arrived. */
async function settled(h: Harness, r: Raw, sid: string): Promise<void> {
  expect(h.gate.send(sid, 'marker', 'm')).toBe(true);
  await r.publishOn('marker');
}

const bodies = (ps: mqttPacket.IPublishPacket[]): string[] => ps.map((p) => p.payload.toString());

describe('QoS 1 pushes', () => {
  test('a QoS 1 push arrives at QoS 1 with a packet id and DUP 0; QoS 0 stays the default, without an id', async () => {
    const h = await gate();
    const { r, sid } = await raw(h);
    expect(h.gate.send(sid, 'news', 'plain')).toBe(true);
    const q0 = await r.publishOn('news');
    expect(q0).toMatchObject({ qos: 0, dup: false, retain: false });
    expect(q0.messageId).toBeUndefined();
    expect(h.gate.send(sid, 'news', 'sure', undefined, 1)).toBe(true);
    const q1 = await r.publishOn('news');
    expect(q1).toMatchObject({ qos: 1, dup: false, retain: false, topic: 'news' });
    expect(q1.payload.toString()).toBe('sure');
    expect(q1.messageId).toBeGreaterThanOrEqual(1);
  });

  test('at 3.1.1, maxOutboundInflight unacknowledged at once: a client that never PUBACKs gets exactly N, the rest in order as it acks', async () => {
    const h = await gate({ maxOutboundInflight: 3 });
    const { r, sid } = await raw(h);
    for (let i = 1; i <= 6; i++) expect(h.gate.send(sid, 'q', `m${i}`, undefined, 1)).toBe(true);
    await settled(h, r, sid);
    const first = r.take();
    expect(bodies(first)).toEqual(['m1', 'm2', 'm3']);
    expect(first.every((p) => p.qos === 1)).toBe(true);
    const ids = first.map((p) => p.messageId as number);
    expect(new Set(ids).size).toBe(3);
    // an identifier not in flight frees nothing
    r.puback(60_000);
    await settled(h, r, sid);
    expect(r.take()).toEqual([]);
    r.puback(ids[0]);
    expect((await r.publishOn('q')).payload.toString()).toBe('m4');
    r.puback(ids[1]);
    r.puback(ids[2]);
    expect((await r.publishOn('q')).payload.toString()).toBe('m5');
    expect((await r.publishOn('q')).payload.toString()).toBe('m6');
    await settled(h, r, sid);
    expect(r.take()).toEqual([]);
  });

  test("at MQTT 5, the client's Receive Maximum is the window when lower than maxOutboundInflight (MQTT-3.3.4-7)", async () => {
    const h = await gate({ maxOutboundInflight: 10 });
    const { r, sid } = await raw(h, 5, { receiveMaximum: 2 });
    for (let i = 1; i <= 4; i++) expect(h.gate.send(sid, 'q5', `m${i}`, { contentType: 'text/plain' }, 1)).toBe(true);
    await settled(h, r, sid);
    const first = r.take();
    expect(bodies(first)).toEqual(['m1', 'm2']);
    expect(first[0]).toMatchObject({ qos: 1, dup: false, properties: { contentType: 'text/plain' } });
    r.puback(first[0].messageId as number);
    r.puback(first[1].messageId as number);
    expect((await r.publishOn('q5')).payload.toString()).toBe('m3');
    expect((await r.publishOn('q5')).payload.toString()).toBe('m4');
    // and maxOutboundInflight when lower than the Receive Maximum
    const { r: r2, sid: sid2 } = await raw(h, 5, { receiveMaximum: 100 });
    for (let i = 1; i <= 12; i++) h.gate.send(sid2, 'q5', `n${i}`, undefined, 1);
    await settled(h, r2, sid2);
    expect(r2.take()).toHaveLength(10);
  });

  test.each([4, 5] as const)('MQTT.js at level %i gets QoS 1 pushes and acks them: more than the window arrive, in order', async (v) => {
    const h = await gate({ maxOutboundInflight: 2 });
    const session = nextSession(h);
    const c = await RecordingPeer.open(h.tcpUrl, { protocolVersion: v });
    peers.push(c);
    const sid = (await session).sessionId;
    for (let i = 1; i <= 7; i++) h.gate.send(sid, 'js', `m${i}`, undefined, 1);
    await waitUntil('7 pushes', () => c.msgs.length === 7);
    expect(c.msgs.map((m) => [m.payload.toString(), m.qos])).toEqual([1, 2, 3, 4, 5, 6, 7].map((i) => [`m${i}`, 1]));
  });

  test('past maxOutboundQueue a QoS 1 push is refused: Send rejects with LIMIT, gate.send answers false, nothing else changes', async () => {
    const warns: Array<[object, string]> = [];
    const logger = { ...silentLogger, warn: (f: object, m: string) => void warns.push([f, m]) };
    const h = await gate({ maxOutboundInflight: 1, maxOutboundQueue: 2, logger });
    const { r, sid } = await raw(h);
    const g = gateClient(h.transport, h.gate.serverId);
    await g.send(sid, 'lim', Buffer.from('a'), undefined, 1);
    await g.send(sid, 'lim', Buffer.from('b'), undefined, 1);
    await g.send(sid, 'lim', Buffer.from('c'), undefined, 1);
    const err = (await g.send(sid, 'lim', Buffer.from('d'), undefined, 1).catch((e: unknown) => e)) as RpcError;
    expect(err).toBeInstanceOf(RpcError);
    expect(err.code).toBe('LIMIT');
    expect(err.message).toMatch(/maxOutboundQueue 2/);
    expect(warns).toEqual([
      [expect.objectContaining({ kind: 'limit:outboundQos1', sessionId: sid }), expect.stringMatching(/^QoS 1 push dropped: /)],
    ]);
    expect(h.gate.send(sid, 'lim', 'e', undefined, 1)).toBe(false);
    // QoS 0 is not held behind them
    expect(h.gate.send(sid, 'lim0', 'zero')).toBe(true);
    await r.publishOn('lim0');
    const a = await r.publishOn('lim');
    r.puback(a.messageId as number);
    const b = await r.publishOn('lim');
    r.puback(b.messageId as number);
    const c = await r.publishOn('lim');
    expect(bodies([a, b, c])).toEqual(['a', 'b', 'c']);
    r.puback(c.messageId as number);
    await settled(h, r, sid);
    expect(r.take()).toEqual([]);
    // with room again, a push is taken
    await g.send(sid, 'lim', Buffer.from('f'), undefined, 1);
    expect((await r.publishOn('lim')).payload.toString()).toBe('f');
  });

  test('bytes held for QoS 1 count against maxBufferedBytes: past it the push is refused with LIMIT', async () => {
    const h = await gate({ maxOutboundInflight: 1, maxBufferedBytes: 1000 });
    const { sid } = await raw(h);
    const g = gateClient(h.transport, h.gate.serverId);
    await g.send(sid, 'big', Buffer.alloc(600), undefined, 1);
    const err = (await g.send(sid, 'big', Buffer.alloc(600), undefined, 1).catch((e: unknown) => e)) as RpcError;
    expect(err.code).toBe('LIMIT');
    expect(err.message).toMatch(/maxBufferedBytes 1000/);
  });

  test('a qos other than 0 or 1 is a bad argument: BAD_ARGUMENT on the wire, TypeError from Session.send and Gate.send', async () => {
    const h = await gate();
    const { sid } = await raw(h);
    const wire = (qos: RpcValue) =>
      h.transport.call({ serverId: h.gate.serverId }, GateFunctions.Send, [sid, 'x', 'b', null, qos]).catch((e: unknown) => e);
    for (const bad of [2, -1, '1', true, 0.5] as RpcValue[]) {
      const e = (await wire(bad)) as RpcError;
      expect(e.code).toBe('BAD_ARGUMENT');
      expect(e.message).toMatch(/argument 4 \(qos\) must be 0 or 1/);
    }
    // null and 0 are QoS 0, 1 is QoS 1
    expect(await wire(null)).toBeNull();
    expect(await wire(0)).toBeNull();
    expect(await wire(1)).toBeNull();
    const data = await gateClient(h.transport, h.gate.serverId).update(sid);
    const s = new Session(data, h.transport);
    await expect(s.send('x', 'b', { qos: 2 as never })).rejects.toThrow(new TypeError('Session.send: qos must be 0 or 1, got 2'));
    await expect(s.sendBatch([sid], 'x', 'b', { qos: '1' as never })).rejects.toThrow(TypeError);
    await expect(s.broadcast('x', 'b', { qos: 2 as never })).rejects.toThrow(TypeError);
    expect(() => h.gate.send(sid, 'x', 'b', undefined, 2 as never)).toThrow(new TypeError('Gate.send: qos must be 0 or 1, got 2'));
  });
});

describe('QoS 1 from a module', () => {
  test("a module's session.send(topic, body, { qos: 1 }) over the in-process transport reaches an MQTT.js client at QoS 1; sendBatch, broadcast and sendNR too", async () => {
    const h = await gate();
    await h.serve('m', async (fn, args) => {
      const s = new Session(args[0] as SessionData, h.transport);
      if (fn === 'HD_push') {
        await s.send('push/one', { n: 1 }, { qos: 1 });
        await s.send('push/props', 'p', { qos: 1, userProperties: { k: 'v' } });
        await s.send('push/zero', 'z');
        const batch = await s.sendBatch([s.sessionId], 'push/batch', 'b', { qos: 1 });
        const all = await s.broadcast('push/all', 'a', { qos: 1 });
        s.sendNR('push/nr', 'nr', { qos: 1 });
        return [batch, all];
      }
      throw new Error(`no ${fn}`);
    });
    const c = await RecordingPeer.open(h.tcpUrl, { protocolVersion: 5 });
    peers.push(c);
    const reply = await c.request('m/HD_push/1', '{}');
    expect(reply).toMatchObject({ Error: '', Result: [1, 1] });
    await c.next((m) => m.topic === 'push/nr');
    const seen = Object.fromEntries(c.msgs.filter((m) => m.topic.startsWith('push/')).map((m) => [m.topic, [m.payload.toString(), m.qos]]));
    expect(seen).toEqual({
      'push/one': ['{"n":1}', 1],
      'push/props': ['p', 1],
      'push/zero': ['z', 0],
      'push/batch': ['b', 1],
      'push/all': ['a', 1],
      'push/nr': ['nr', 1],
    });
  });

  test('the wire: QoS 0 sends the arguments an mqant gate knows; QoS 1 adds a null properties slot and 1', () => {
    const b = Buffer.from('x');
    expect(GATE_VERBS.send.encode(['s', 't', b, undefined, 0])).toEqual(['s', 't', b]);
    expect(GATE_VERBS.send.encode(['s', 't', b, undefined, undefined])).toEqual(['s', 't', b]);
    expect(GATE_VERBS.send.encode(['s', 't', b, undefined, 1])).toEqual(['s', 't', b, null, 1]);
    expect(GATE_VERBS.send.encode(['s', 't', b, { contentType: 'c' }, 1])).toEqual(['s', 't', b, { contentType: 'c' }, 1]);
    expect(GATE_VERBS.broadcast.encode(['t', b, undefined, 1])).toEqual(['t', b, null, 1]);
    expect(GATE_VERBS.send.decode(['s', 't', b])).toEqual(['s', 't', b, undefined, undefined]);
    expect(GATE_VERBS.send.decode(['s', 't', b, null, 0])).toEqual(['s', 't', b, undefined, 0]);
    expect(GATE_VERBS.send.decode(['s', 't', b, null, 1])).toEqual(['s', 't', b, undefined, 1]);
    // a hand-over carries a QoS 1 push's qos and identifier; a QoS 0 push's shape is as before
    const h = { userId: 'u', traceId: 't', settings: {}, lost: 0, tokenHash: Buffer.alloc(32, 1) };
    const pushes = [
      { topic: 'a', body: b, qos: 1 as const, messageId: 7 },
      { topic: 'b', body: b, qos: 1 as const },
      { topic: 'c', body: b },
    ];
    const wire = GATE_VERBS.handOver.reply?.({ ...h, pushes }) as RpcValue[];
    expect(wire[5]).toEqual([
      ['a', b, null, 1, 7],
      ['b', b, null, 1, 0],
      ['c', b, null],
    ]);
    expect(GATE_VERBS.handOver.result(wire).pushes).toEqual(pushes);
  });

  test('the QoS 1 PUBLISH encoder writes what mqtt-packet writes, at 3.1.1 and 5, DUP 0 and 1', () => {
    const payload = Buffer.from('hello');
    for (const dup of [false, true]) {
      const base = { cmd: 'publish' as const, topic: 'a/b', payload, qos: 1 as const, dup, retain: false, messageId: 513 };
      expect(encodePublishQos1('a/b', payload, 513, dup, false, undefined)).toEqual(mqttPacket.generate(base, { protocolVersion: 4 }));
      expect(encodePublishQos1('a/b', payload, 513, dup, true, undefined)).toEqual(mqttPacket.generate(base, { protocolVersion: 5 }));
      const properties = { messageExpiryInterval: 9, contentType: 'text/plain', userProperties: { k: 'v' } };
      expect(encodePublishQos1('a/b', payload, 513, dup, true, properties)).toEqual(
        mqttPacket.generate({ ...base, properties }, { protocolVersion: 5 }),
      );
    }
  });

  test('options: maxOutboundInflight 1..65535 integers, maxOutboundQueue ≥ 0; defaults 32 and 1000', () => {
    expect(resolveOptions({})).toMatchObject({ maxOutboundInflight: 32, maxOutboundQueue: 1000 });
    expect(resolveOptions({ maxOutboundInflight: 65_535, maxOutboundQueue: 0 })).toMatchObject({ maxOutboundInflight: 65_535, maxOutboundQueue: 0 });
    expect(() => resolveOptions({ maxOutboundInflight: 0 })).toThrow(/maxOutboundInflight must be an integer ≥ 1/);
    expect(() => resolveOptions({ maxOutboundInflight: 1.5 })).toThrow(/maxOutboundInflight/);
    expect(() => resolveOptions({ maxOutboundInflight: 65_536 })).toThrow(/maxOutboundInflight must be at most 65535/);
    expect(() => resolveOptions({ maxOutboundQueue: -1 })).toThrow(/maxOutboundQueue/);
  });
});

describe('QoS 1 and resume', () => {
  /** A 'user' module whose HD_login binds the session (as in resume.test.ts). */
  async function serveLogin(h: { serve: Harness['serve']; transport: Harness['transport'] }): Promise<void> {
    await h.serve('user', async (_fn, args) => {
      const s = args[0] as SessionData;
      const { userId } = args[1] as { userId: string };
      const bound = await gateClient(h.transport, s.serverId).bind(s.sessionId, userId);
      return { sessionId: bound.sessionId };
    });
  }

  /** A raw client logs in as `userId`; resolves with its session id and resume token. */
  async function login(r: Raw, userId: string): Promise<{ sessionId: string; token: string }> {
    r.request('user/HD_login/1', { userId });
    const reply = JSON.parse((await r.publishOn('user/HD_login/1')).payload.toString()) as { Error: string; Result: { sessionId: string } };
    expect(reply.Error).toBe('');
    const token = (JSON.parse((await r.publishOn('gate/session')).payload.toString()) as { token: string }).token;
    return { sessionId: reply.Result.sessionId, token };
  }

  test.each([4, 5] as const)(
    'level %i: unacknowledged pushes come again on resume with DUP 1 and their ids, then the queued one, then those buffered while detached',
    async (v) => {
      const h = await gate({ maxOutboundInflight: 3, resumeWindow: 60_000 });
      await serveLogin(h);
      const first = await raw(h, v, v === 5 ? { sessionExpiryInterval: 60 } : undefined);
      const { sessionId, token } = await login(first.r, 'qos-user');
      for (let i = 1; i <= 5; i++) expect(h.gate.send(sessionId, 'q', `m${i}`, undefined, 1)).toBe(true);
      await settled(h, first.r, sessionId);
      const sent = first.r.take();
      expect(bodies(sent)).toEqual(['m1', 'm2', 'm3']);
      first.r.puback(sent[0].messageId as number); // m1 acknowledged: not resent; m4 goes out, unacknowledged
      const m4 = await first.r.publishOn('q');
      expect(m4.payload.toString()).toBe('m4');
      const ids = new Map([...sent.slice(1), m4].map((p) => [p.payload.toString(), p.messageId]));
      const gone = new Promise<void>((resolve) => h.gate.on('disconnect', (s) => s.sessionId === sessionId && resolve()));
      first.r.socket.destroy();
      await gone;
      await waitUntil('detached', () => h.gate.counts().detached === 1);
      expect(h.gate.send(sessionId, 'b', 'zero')).toBe(true); // QoS 0, buffered
      expect(h.gate.send(sessionId, 'b', 'one', undefined, 1)).toBe(true); // QoS 1, buffered

      const second = await raw(h, v);
      second.r.request('gate/HD_resume/1', { token });
      const answer = JSON.parse((await second.r.publishOn('gate/HD_resume/1')).payload.toString()) as { Error: string; Result: unknown };
      expect(answer).toMatchObject({ Error: '', Result: { sessionId, replayed: 6, lost: 0 } });
      await second.r.publishOn('gate/session');
      await settled(h, second.r, sessionId);
      // window 3: m2, m3, m4 resent (DUP 1, same ids); m5 and "one" wait behind them; "zero" is QoS 0
      const resent = second.r.take().filter((p) => p.topic !== 'marker');
      expect(resent.map((p) => [p.topic, p.payload.toString(), p.qos, p.dup])).toEqual([
        ['q', 'm2', 1, true],
        ['q', 'm3', 1, true],
        ['q', 'm4', 1, true],
        ['b', 'zero', 0, false],
      ]);
      for (const p of resent.slice(0, 3)) expect(p.messageId).toBe(ids.get(p.payload.toString()));
      for (const p of resent.slice(0, 3)) second.r.puback(p.messageId as number);
      const m5 = await second.r.publishOn('q');
      const one = await second.r.publishOn('b');
      expect([m5.payload.toString(), m5.qos, m5.dup, one.payload.toString(), one.qos, one.dup]).toEqual(['m5', 1, false, 'one', 1, false]);
      expect(m5.messageId).not.toBe(one.messageId); // both in flight at once
    },
  );

  test('a session detached on gate A resumes on gate B: the unacknowledged QoS 1 pushes travel with the hand-over and come again with DUP 1 and their ids', async () => {
    const transport = new InProcessTransport();
    const index = new MemoryUserIndex();
    const opts = { tcp: { port: 0, host: '127.0.0.1' }, websocket: false as const, userIndex: index, maxOutboundInflight: 4 };
    const a = new Gate({ ...opts, serverId: 'gate@qa' });
    const b = new Gate({ ...opts, serverId: 'gate@qb' });
    await a.start({ transport, logger: silentLogger, userIndex: index });
    await b.start({ transport, logger: silentLogger, userIndex: index });
    const ha = {
      gate: a,
      transport,
      serve: (t: string, fn: RpcHandler) => transport.serve({ serverId: `${t}@q`, moduleType: t }, fn).then(() => undefined),
    };
    harnesses.push({ stop: async () => Promise.all([a.stop(), b.stop()]).then(() => transport.close()) } as unknown as Harness);
    await serveLogin(ha as unknown as Harness);
    const onA = await rawOn(a);
    const { sessionId, token } = await login(onA.r, 'roamer');
    for (let i = 1; i <= 2; i++) expect(a.send(sessionId, 'q', `m${i}`, { contentType: 'x' }, 1)).toBe(true);
    const p1 = await onA.r.publishOn('q');
    const p2 = await onA.r.publishOn('q');
    const gone = new Promise<void>((resolve) => a.on('disconnect', (s) => s.sessionId === sessionId && resolve()));
    onA.r.socket.destroy();
    await gone;
    await waitUntil('detached on A', () => a.counts().detached === 1);
    const users = new UserDirectory(transport, index);
    expect(await users.sendToUser('roamer', 'u', 'later', undefined, 1)).toBe(1); // buffered on A at QoS 1
    await expect(users.sendToUser('roamer', 'u', 'x', undefined, 2 as never)).rejects.toThrow(TypeError);

    const onB = await rawOn(b);
    onB.r.request('gate/HD_resume/1', { token });
    const answer = JSON.parse((await onB.r.publishOn('gate/HD_resume/1')).payload.toString()) as { Error: string; Result: unknown };
    expect(answer).toMatchObject({ Error: '', Result: { sessionId, replayed: 3 } });
    const r1 = await onB.r.publishOn('q');
    const r2 = await onB.r.publishOn('q');
    expect([r1, r2].map((p) => [p.payload.toString(), p.qos, p.dup])).toEqual([
      ['m1', 1, true],
      ['m2', 1, true],
    ]);
    expect([r1.messageId, r2.messageId]).toEqual([p1.messageId, p2.messageId]);
    expect(r1.properties).toBeUndefined(); // a 3.1.1 client: no properties
    const later = await onB.r.publishOn('u');
    expect([later.payload.toString(), later.qos, later.dup]).toEqual(['later', 1, false]);
    expect(a.counts().detached).toBe(0);
  });

  async function rawOn(g: Gate): Promise<{ r: Raw; sid: string }> {
    const session = new Promise<string>((resolve) => g.once('connect', (s: SessionData) => resolve(s.sessionId)));
    const r = await Raw.open(g.addresses().tcp!.port);
    raws.push(r);
    await r.connect();
    return { r, sid: await session };
  }
});
