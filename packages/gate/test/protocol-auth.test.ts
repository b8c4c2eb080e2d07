/**
 * The authenticate hook at CONNECT (reference/mqtt-layer.md §6.3 item 2; MQTT-3.2.2.3):
 * what it sees, and the CONNACK return code for each answer.
 */
import type * as mqtt from 'mqtt';
import type { IConnackPacket, IPubackPacket, IPublishPacket } from 'mqtt-packet';
import type { AuthenticateResult, ConnectInfo } from '@mqgate/gate';
import { Connections } from './helpers/connections';
import { startGate, mqttConnect, request, mqttOpts, VERSIONS, type Harness } from './helpers/harness';
import { within } from './helpers/waiters';

let h: Harness;
/** The hook of the current test; the gate's hook delegates to it. */
let hook: (info: ConnectInfo) => AuthenticateResult | Promise<AuthenticateResult> = () => true;
const seen: ConnectInfo[] = [];
/** 'connect' events (accepted CONNECTs) in the current test. */
let connects = 0;
const conns = new Connections();

beforeAll(async () => {
  h = await startGate({
    authenticate: (info) => {
      seen.push(info);
      return hook(info);
    },
  });
  h.gate.on('connect', () => connects++);
  await h.serve('svc', async (fn, args) => (fn === 'HD_echo' ? args[1] : null));
});

beforeEach(() => {
  seen.length = 0;
  connects = 0;
  hook = () => true;
});

afterEach(() => conns.closeAll());

afterAll(() => h.stop());

const openMqtt = (url: string, opts: mqtt.IClientOptions) => conns.mqtt(url, opts);
const openRaw = () => conns.raw(h.tcpPort);

describe.each(VERSIONS)('MQTT.js at level %i', (v) => {
  test('the hook sees client id, user name, password (Buffer), remote address, network, level, secure, certificate', async () => {
    const c = await openMqtt(h.tcpUrl, { ...mqttOpts(v), clientId: `auth-info-${v}`, username: 'alice', password: 's3cret' });
    expect(seen).toHaveLength(1);
    const info = seen[0];
    expect(info).toEqual({
      clientId: `auth-info-${v}`,
      username: 'alice',
      password: Buffer.from('s3cret'),
      remoteAddress: '127.0.0.1',
      network: 'tcp',
      protocolVersion: v,
      secure: false,
      certificate: undefined,
    });
    expect(Buffer.isBuffer(info.password)).toBe(true);
    expect(c.connected).toBe(true);
  });

  test('over WebSocket the hook sees network "websocket" and the loopback address', async () => {
    await openMqtt(h.wsUrl, { ...mqttOpts(v), clientId: `auth-ws-${v}`, username: 'bob' });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ clientId: `auth-ws-${v}`, username: 'bob', remoteAddress: '127.0.0.1', network: 'websocket' });
    expect(seen[0].password).toBeUndefined();
  });

  test('without user name and password the hook sees undefined for both', async () => {
    await openMqtt(h.tcpUrl, { ...mqttOpts(v), clientId: `auth-anon-${v}` });
    expect(seen[0]).toMatchObject({ clientId: `auth-anon-${v}`, username: undefined, password: undefined });
  });

  test.each([
    ['true', () => true],
    ['a promise of true', async () => true],
    ['a promise of true resolved later', () => new Promise<AuthenticateResult>((r) => setTimeout(() => r(true), 30))],
  ] as Array<[string, () => AuthenticateResult | Promise<AuthenticateResult>]>)(
    'a hook answering %s accepts and requests work',
    async (_n, answer) => {
      hook = answer;
      const c = await openMqtt(h.tcpUrl, { ...mqttOpts(v), clientId: `auth-ok-${v}` });
      const reply = await within(request(c, 'svc/HD_echo/1', '{"in":true}'), 2000, 'reply');
      expect(reply.Result).toEqual({ in: true });
    },
  );

  test.each([
    ['false', 5, () => false],
    ['{ returnCode: 5 }', 5, () => ({ returnCode: 5 })],
    ['{ returnCode: 4 }', 4, () => ({ returnCode: 4 })],
    ['a promise of false', 5, async () => false],
    ['a promise of { returnCode: 4 }', 4, async () => ({ returnCode: 4 })],
    [
      'a throw',
      3,
      () => {
        throw new Error('auth backend down');
      },
    ],
    ['a rejected promise', 3, () => Promise.reject(new Error('auth backend down'))],
  ] as Array<[string, number, () => AuthenticateResult | Promise<AuthenticateResult>]>)(
    'a hook answering %s refuses: MQTT.js gets a connect error with code %i',
    async (_n, code, answer) => {
      hook = answer;
      // MQTT 5 states the same refusals as reason codes (MQTT 5 §3.2.2.2): 5 → 0x87, 4 → 0x86, 3 → 0x88.
      const expected = v === 5 ? ({ 3: 0x88, 4: 0x86, 5: 0x87 } as Record<number, number>)[code] : code;
      await expect(mqttConnect(h.tcpUrl, { ...mqttOpts(v), clientId: `auth-no-${v}` })).rejects.toMatchObject({ code: expected });
      expect(seen).toHaveLength(1);
      expect(connects).toBe(0);
    },
  );
});

describe('raw client: CONNACK return code, then the gate closes the socket', () => {
  test.each([
    ['false', 5, () => false],
    ['{ returnCode: 4 }', 4, () => ({ returnCode: 4 })],
    ['an async false', 5, async () => false],
    ['an async { returnCode: 4 }', 4, async () => ({ returnCode: 4 })],
    [
      'a throw',
      3,
      () => {
        throw new Error('boom');
      },
    ],
    ['a rejected promise', 3, () => Promise.reject(new Error('boom'))],
  ] as Array<[string, number, () => AuthenticateResult | Promise<AuthenticateResult>]>)('%s → return code %i and close', async (_n, code, answer) => {
    hook = answer;
    const raw = await openRaw();
    const ack = await within(raw.connect({ clientId: 'raw-auth', username: 'u', password: Buffer.from('p') }), 2000, 'CONNACK');
    expect(ack.returnCode).toBe(code);
    await within(raw.closed, 2000, 'close after refusal');
    expect(raw.packets).toEqual([]);
  });

  test('packets sent while an async hook decides are handled after CONNACK, in order', async () => {
    let release!: () => void;
    let called!: () => void;
    const hookCalled = new Promise<void>((r) => (called = r));
    hook = () => {
      called();
      return new Promise<AuthenticateResult>((r) => (release = () => r(true)));
    };
    const raw = await openRaw();
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'early', keepalive: 60 });
    raw.send({ cmd: 'pingreq' });
    raw.send({ cmd: 'publish', topic: 'svc/HD_echo/early', payload: Buffer.from('{"early":1}'), qos: 1, messageId: 9, dup: false, retain: false });
    await within(hookCalled, 2000, 'the hook to be called');
    expect(raw.packets).toEqual([]);
    release();
    const ack = (await within(raw.next('connack'), 2000, 'CONNACK')) as IConnackPacket;
    expect(ack.returnCode).toBe(0);
    await within(raw.next('pingresp'), 2000, 'PINGRESP');
    expect(((await within(raw.next('puback'), 2000, 'PUBACK')) as IPubackPacket).messageId).toBe(9);
    const reply = (await within(raw.next('publish'), 2000, 'reply')) as IPublishPacket;
    expect(JSON.parse(reply.payload.toString()).Result).toEqual({ early: 1 });
  });

  test('over WebSocket a refused CONNECT gets its return code and the WebSocket closes', async () => {
    hook = () => ({ returnCode: 4 });
    const ws = await conns.ws(h.wsUrl);
    const ack = await within(ws.connect({ clientId: 'ws-refused' }), 2000, 'CONNACK');
    expect(ack.returnCode).toBe(4);
    await within(ws.closed, 3000, 'WebSocket close');
    expect(seen[0]).toMatchObject({ clientId: 'ws-refused', network: 'websocket', remoteAddress: '127.0.0.1' });
  });
});
