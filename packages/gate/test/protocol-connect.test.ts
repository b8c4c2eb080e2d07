/**
 * CONNECT rules (reference/mqtt-layer.md §6.3 items 1 and 2; MQTT 3.1.1 §3.1, §3.2):
 * CONNECT first and in time, one CONNECT per connection, protocol levels, client ids.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import type * as mqtt from 'mqtt';
import type { SessionData } from '@mqgate/rpc';
import { Connections } from './helpers/connections';
import { startGate, request, mqttOpts, VERSIONS, V3_VERSIONS, type Harness } from './helpers/harness';
import { staysOpen, within } from './helpers/waiters';

/** Hand-built CONNECT: protocol name, level and flags exactly as given (mqtt-packet's generate refuses some). */
function rawConnect(opts: { protocolId?: string; level: number; flags: number; keepalive?: number; clientId?: string }): Buffer {
  const name = Buffer.from(opts.protocolId ?? 'MQTT');
  const id = Buffer.from(opts.clientId ?? '');
  const keepalive = opts.keepalive ?? 60;
  const body = Buffer.concat([
    Buffer.from([name.length >> 8, name.length & 0xff]),
    name,
    Buffer.from([opts.level, opts.flags, keepalive >> 8, keepalive & 0xff, id.length >> 8, id.length & 0xff]),
    id,
  ]);
  if (body.length > 127) throw new Error('keep hand-built CONNECTs short');
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

let h: Harness;
const conns = new Connections();
let calls = 0;

const openRaw = () => conns.raw(h.tcpPort);
const openMqtt = (opts: mqtt.IClientOptions) => conns.mqtt(h.tcpUrl, opts);

beforeAll(async () => {
  // 1.5 s: long enough that a loaded CI machine delivers every CONNECT in time.
  h = await startGate({ connectTimeout: 1500 });
  await h.serve('svc', async (fn, args) => {
    calls++;
    return fn === 'HD_echo' ? args[1] : null;
  });
});

afterEach(() => conns.closeAll());

afterAll(() => h.stop());

describe('CONNECT must come first, in time (MQTT-3.1.0-1)', () => {
  test('a connection that sends nothing is closed after connectTimeout', async () => {
    const t0 = Date.now();
    const raw = await openRaw();
    await within(raw.closed, 6000, 'server to close a silent connection');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1450);
    expect(raw.packets).toEqual([]);
  });

  test('a connection that sends only part of a CONNECT is closed after connectTimeout', async () => {
    const raw = await openRaw();
    const t0 = Date.now();
    raw.sendBytes(rawConnect({ level: 4, flags: 0x02, clientId: 'partial' }).subarray(0, 6));
    await within(raw.closed, 6000, 'server to close a connection stuck inside CONNECT');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(raw.packets).toEqual([]);
  });

  test('a connection that sent CONNECT in time outlives connectTimeout', async () => {
    const raw = await openRaw();
    expect((await within(raw.connect({ clientId: 'in-time' }), 5000, 'CONNACK')).returnCode).toBe(0);
    expect(await staysOpen(raw.closed, 1800)).toBe(true);
    raw.send({ cmd: 'pingreq' });
    await within(raw.next('pingresp'), 2000, 'PINGRESP');
  });

  test('a PINGREQ as first packet closes the connection without a PINGRESP', async () => {
    const raw = await openRaw();
    raw.send({ cmd: 'pingreq' });
    await within(raw.closed, 2000, 'close after a non-CONNECT first packet');
    expect(raw.packets).toEqual([]);
  });

  test('a PUBLISH as first packet closes the connection and is not dispatched', async () => {
    const before = calls;
    const raw = await openRaw();
    raw.send({ cmd: 'publish', topic: 'svc/HD_echo/1', payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
    await within(raw.closed, 2000, 'close after a PUBLISH first packet');
    expect(raw.packets).toEqual([]);
    // A later request on another connection is routed, so the gate is alive and had its chance.
    const c = await openMqtt({ clientId: 'after-first-publish' });
    await within(request(c, 'svc/HD_echo/2', '{"ok":1}'), 2000, 'reply');
    expect(calls).toBe(before + 1);
  });
});

// MQTT 5 sends DISCONNECT 0x82 first: protocol-v5-disconnect.test.ts.
describe('a second CONNECT closes the connection (MQTT-3.1.0-2)', () => {
  test.each(
    V3_VERSIONS.flatMap((v) => [
      [v, 'the same client id'],
      [v, 'another client id'],
    ]) as Array<[3 | 4, string]>,
  )('level %i, second CONNECT with %s: closed, no second CONNACK, no session left', async (v, which) => {
    const sessions: string[] = [];
    const onConnect = (s: SessionData) => sessions.push(s.sessionId);
    h.gate.on('connect', onConnect);
    try {
      const raw = await openRaw();
      const protocolId = v === 3 ? 'MQIsdp' : 'MQTT';
      expect((await raw.connect({ clientId: `twice-${v}`, protocolId, protocolVersion: v })).returnCode).toBe(0);
      const clientId = which === 'the same client id' ? `twice-${v}` : `twice-${v}-other`;
      raw.send({ cmd: 'connect', protocolId, protocolVersion: v, clean: true, clientId, keepalive: 60 }, v);
      const closed = !(await staysOpen(raw.closed, 1000));
      // One assertion so a failure shows everything: closed or not, packets after the first CONNACK, sessions
      // still registered for this closed connection, sessions it produced. (The gate closes and
      // forgets a session before the client can see the close.)
      expect({
        closed,
        packetsAfterFirstConnack: raw.packets.map((p) => p.cmd),
        liveSessions: sessions.filter((id) => h.gate.getSession(id) !== undefined).length,
        sessionsCreated: sessions.length,
      }).toEqual({ closed: true, packetsAfterFirstConnack: [], liveSessions: 0, sessionsCreated: 1 });
    } finally {
      h.gate.off('connect', onConnect);
    }
  });
});

describe('protocol level (MQTT-3.1.2-2)', () => {
  test.each([
    ['level 6', rawConnect({ level: 6, flags: 0x02, clientId: 'v6' })],
    ['level 2', rawConnect({ level: 2, flags: 0x02, clientId: 'v2' })],
    ['level 0', rawConnect({ level: 0, flags: 0x02, clientId: 'v0' })],
    ['level 0x84 (4 with the bridge bit)', rawConnect({ level: 0x84, flags: 0x02, clientId: 'v84' })],
  ])('a hand-built %s CONNECT gets CONNACK return code 1, then close', async (_name, bytes) => {
    const raw = await openRaw();
    raw.sendBytes(bytes);
    const ack = (await within(raw.next('connack'), 2000, 'CONNACK')) as { returnCode: number };
    expect(ack.returnCode).toBe(1);
    await within(raw.closed, 2000, 'close after refusing the level');
  });

  test.each(VERSIONS)('MQTT.js at protocol level %i connects and gets replies', async (v) => {
    const c = await openMqtt({ ...mqttOpts(v), clientId: `level-${v}` });
    const reply = await within(request(c, 'svc/HD_echo/1', '{"v":1}'), 2000, 'reply');
    expect(reply).toEqual({ Trace: expect.any(String), Error: '', Result: { v: 1 } });
  });
});

describe('client identifier (MQTT-3.1.3-6, -8)', () => {
  test('an empty client id with clean session 0 gets CONNACK return code 2, then close', async () => {
    const raw = await openRaw();
    raw.sendBytes(rawConnect({ level: 4, flags: 0x00, clientId: '' }));
    const ack = (await within(raw.next('connack'), 2000, 'CONNACK')) as { returnCode: number };
    expect(ack.returnCode).toBe(2);
    await within(raw.closed, 2000, 'close after return code 2');
  });

  test('an empty client id with clean session 1 is accepted (raw) and requests work', async () => {
    const raw = await openRaw();
    expect((await raw.connect({ clientId: '', clean: true })).returnCode).toBe(0);
    raw.send({ cmd: 'publish', topic: 'svc/HD_echo/raw', payload: Buffer.from('{"e":1}'), qos: 0, dup: false, retain: false });
    const reply = (await within(raw.next('publish'), 2000, 'reply')) as { topic: string; payload: Buffer };
    expect(reply.topic).toBe('svc/HD_echo/raw');
    expect(JSON.parse(reply.payload.toString())).toMatchObject({ Error: '', Result: { e: 1 } });
  });

  test('MQTT.js (level 4) with an empty client id and clean session is accepted and gets replies', async () => {
    const c = await openMqtt({ clientId: '', clean: true });
    const reply = await within(request(c, 'svc/HD_echo/1', '{"empty":true}'), 2000, 'reply');
    expect(reply.Result).toEqual({ empty: true });
  });

  test('two clients with empty client ids get distinct ids and do not take each other over', async () => {
    const a = await openMqtt({ clientId: '', clean: true });
    const b = await openMqtt({ clientId: '', clean: true });
    expect((await within(request(a, 'svc/HD_echo/a', '{"who":"a"}'), 2000, 'reply a')).Result).toEqual({ who: 'a' });
    expect((await within(request(b, 'svc/HD_echo/b', '{"who":"b"}'), 2000, 'reply b')).Result).toEqual({ who: 'b' });
    expect(a.connected && b.connected).toBe(true);
  });
});

describe('a Password without a User Name (MQTT-3.1.2-22)', () => {
  /** CONNECT with the Password flag (0x40) and clean session, no User Name flag, password "pw". */
  function passwordOnly(level: 4 | 5): Buffer {
    const name = Buffer.from('MQTT');
    const id = Buffer.from(`pw-only-${level}`);
    const pw = Buffer.from('pw');
    const body = Buffer.concat([
      Buffer.from([0, name.length]),
      name,
      Buffer.from([level, 0x42, 0, 60]),
      level === 5 ? Buffer.from([0]) : Buffer.alloc(0), // MQTT 5: no properties
      Buffer.from([0, id.length]),
      id,
      Buffer.from([0, pw.length]),
      pw,
    ]);
    return Buffer.concat([Buffer.from([0x10, body.length]), body]);
  }

  test('at 3.1.1 the connection is closed without a CONNACK and no session is made', async () => {
    const before = calls;
    const raw = await openRaw();
    raw.sendBytes(passwordOnly(4));
    await within(raw.closed, 2000, 'close of a CONNECT with a password and no user name');
    expect(raw.packets).toEqual([]);
    expect(h.gate.counts().total).toBe(0);
    expect(calls).toBe(before);
  });

  test('MQTT 5 allows it (MQTT 5.0 §3.1.2.9): CONNACK with reason code 0', async () => {
    const socket = netConnect(h.tcpPort, '127.0.0.1');
    try {
      await once(socket, 'connect');
      socket.write(passwordOnly(5));
      const [chunk] = (await within(once(socket, 'data'), 2000, 'CONNACK')) as [Buffer];
      // CONNACK: type 0x20, remaining length (< 128 here), acknowledge flags, reason code.
      expect([chunk[0], chunk[3]]).toEqual([0x20, 0x00]);
    } finally {
      socket.destroy();
    }
  });
});
