/**
 * Routing, mqant wire compatibility (mqant.md §3.3–3.5): topic forms, request vs notify,
 * payload decoding, the reply envelope, raw byte replies, errors, server pinning, reply QoS.
 */
import type { IClientOptions } from 'mqtt';
import { TOPIC_FORM_ERROR } from '@mqgate/gate';
import type { RpcValue, SessionData } from '@mqgate/rpc';
import { mqttOpts, startGate, RawClient, type Harness } from './helpers/harness';
import { RecordingPeer } from './helpers/peer';

// ---------------------------------------------------------------- helpers (file-local)

interface Call {
  server: string;
  fn: string;
  session: SessionData;
  payload: RpcValue;
}

// ---------------------------------------------------------------- fixture

let h: Harness;
const calls: Call[] = [];
let callWaiters: Array<{ pred: (c: Call) => boolean; resolve: (c: Call) => void }> = [];
const peers: RecordingPeer[] = [];

function record(server: string, fn: string, args: RpcValue[]): void {
  const c: Call = { server, fn, session: args[0] as SessionData, payload: args[1] };
  calls.push(c);
  callWaiters = callWaiters.filter((w) => (w.pred(c) ? (w.resolve(c), false) : true));
}

/** The first call at index >= `from` (already made or future) matching `pred`. */
function nextCall(pred: (c: Call) => boolean, from = 0): Promise<Call> {
  const found = calls.slice(from).find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve) => callWaiters.push({ pred, resolve }));
}

/** Describes how a payload reached the handler. */
function describe_(payload: RpcValue): { kind: string; hex?: string; value?: unknown } {
  if (Buffer.isBuffer(payload)) return { kind: 'buffer', hex: payload.toString('hex') };
  if (payload instanceof Uint8Array) return { kind: 'uint8array', hex: Buffer.from(payload).toString('hex') };
  if (Array.isArray(payload)) return { kind: 'array', value: payload };
  return { kind: typeof payload === 'object' && payload !== null ? 'object' : typeof payload, value: payload };
}

beforeAll(async () => {
  h = await startGate();
  await h.serve('echo', async (fn, args) => {
    record('echo@test', fn, args);
    switch (fn) {
      case 'HD_echo':
        return args[1];
      case 'HD_kind':
        return describe_(args[1]);
      case 'HD_raw':
        return Buffer.from([0x00, 0x01, 0x7b, 0xff, 0x22]);
      case 'HD_rawU8':
        return new Uint8Array([0x68, 0x69]);
      case 'HD_throw':
        throw new Error('boom: the handler failed');
      case 'HD_notify':
        return 'a result nobody must receive';
      case 'HD_session':
        return { ...(args[0] as SessionData) };
      default:
        throw new Error(`echo has no handler ${fn}`);
    }
  });
  for (const id of ['one', 'two']) {
    await h.serve(
      'pin',
      (fn, args) => {
        record(`pin@${id}`, fn, args);
        return { server: id };
      },
      `pin@${id}`,
    );
  }
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.end()));
});

afterAll(() => h.stop());

/** The MQTT.js protocol level of this pass over the file's cases (every case runs at 3.1.1 and at 5). */
let level: 4 | 5 = 4;

async function peer(opts: IClientOptions = {}): Promise<RecordingPeer> {
  const p = await RecordingPeer.open(h.tcpUrl, { ...mqttOpts(level), ...opts });
  peers.push(p);
  return p;
}

describe.each([4, 5] as const)('MQTT.js at level %i', (v) => {
  beforeAll(() => {
    level = v;
    calls.length = 0; // each pass looks only at its own calls
  });

  // ---------------------------------------------------------------- request / notify

  test('moduleType/HD_handler/msgid is a request: reply on the same topic with {Trace, Error:"", Result}', async () => {
    const p = await peer();
    const reply = await p.ask('echo/HD_echo/1', '{"hello":"world","n":1}');
    expect(reply.topic).toBe('echo/HD_echo/1');
    const env = JSON.parse(reply.payload.toString('utf8'));
    expect(Object.keys(env).sort()).toEqual(['Error', 'Result', 'Trace']);
    expect(env.Error).toBe('');
    expect(env.Result).toEqual({ hello: 'world', n: 1 });
    const call = await nextCall((c) => c.fn === 'HD_echo' && c.session.topic === 'echo/HD_echo/1');
    expect(env.Trace).toBe(call.session.traceId);
    expect(env.Trace).not.toBe('');
  });

  test('moduleType/HD_handler (2 levels) is a notify: the handler runs and no reply comes', async () => {
    const p = await peer();
    const before = calls.length;
    p.publish('echo/HD_notify', '{"x":1}');
    const call = await nextCall((c) => c.fn === 'HD_notify', before);
    expect(call.session.topic).toBe('echo/HD_notify');
    expect(call.payload).toEqual({ x: 1 });
    expect(calls.slice(before).filter((c) => c.fn === 'HD_notify')).toHaveLength(1);
    // A reply to the notify would be written before the reply to this later request (one socket, in order).
    const env = await p.request('echo/HD_echo/after-notify', '{"k":2}');
    expect(env.Result).toEqual({ k: 2 });
    expect(p.msgs.map((m) => m.topic)).toEqual(['echo/HD_echo/after-notify']);
  });

  test('a msgid holding "/" (echo/HD_echo/a/b) is still a request, replied on that exact topic', async () => {
    const p = await peer();
    const reply = await p.ask('echo/HD_echo/a/b', '{"deep":true}');
    expect(reply.topic).toBe('echo/HD_echo/a/b');
    expect(JSON.parse(reply.payload.toString()).Result).toEqual({ deep: true });
    const call = await nextCall((c) => c.session.topic === 'echo/HD_echo/a/b');
    expect(call.fn).toBe('HD_echo');
    expect(p.msgs.map((m) => m.topic)).toEqual(['echo/HD_echo/a/b']);
  });

  // ---------------------------------------------------------------- payload decoding

  describe('payload as the handler receives it', () => {
    test('a JSON object arrives as an object', async () => {
      const p = await peer();
      const env = await p.request('echo/HD_kind/obj', ' {"a":[1,2],"b":{"c":null}} ');
      expect(env.Error).toBe('');
      expect(env.Result).toEqual({ kind: 'object', value: { a: [1, 2], b: { c: null } } });
    });

    test.each([
      ['a JSON array', Buffer.from('[1,2,3]')],
      ['invalid JSON {abc}', Buffer.from('{abc}')],
      ['an empty payload', Buffer.alloc(0)],
      ['binary bytes', Buffer.from([0x7b, 0x00, 0xff, 0x80, 0x7d])],
      ['a JSON string', Buffer.from('"text"')],
      ['a JSON number', Buffer.from('42')],
    ])('%s arrives as a Buffer holding exactly the bytes sent', async (_name, body) => {
      const p = await peer();
      const msgid = `buf-${Math.random().toString(16).slice(2)}`;
      const env = await p.request(`echo/HD_kind/${msgid}`, body);
      expect(env.Error).toBe('');
      expect(env.Result).toEqual({ kind: 'buffer', hex: body.toString('hex') });
      const call = await nextCall((c) => c.session.topic === `echo/HD_kind/${msgid}`);
      expect(Buffer.isBuffer(call.payload)).toBe(true);
      expect((call.payload as Buffer).equals(body)).toBe(true);
    });
  });

  // ---------------------------------------------------------------- replies

  test('a handler returning a Buffer: the reply body is exactly those bytes, unwrapped', async () => {
    const p = await peer();
    const reply = await p.ask('echo/HD_raw/1', '');
    expect(reply.payload.equals(Buffer.from([0x00, 0x01, 0x7b, 0xff, 0x22]))).toBe(true);
    const reply2 = await p.ask('echo/HD_rawU8/1', '');
    expect(reply2.payload.equals(Buffer.from('hi'))).toBe(true);
  });

  test('an echoed binary payload comes back as the same raw bytes', async () => {
    const p = await peer();
    const body = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00]);
    const reply = await p.ask('echo/HD_echo/bin', body);
    expect(reply.payload.equals(body)).toBe(true);
  });

  test('a handler that throws: Error holds its message, Result is null', async () => {
    const p = await peer();
    const env = await p.request('echo/HD_throw/1', '{}');
    expect(env.Error).toContain('boom: the handler failed');
    expect(env.Result).toBeNull();
    expect(typeof env.Trace).toBe('string');
  });

  // ---------------------------------------------------------------- server pinning

  test('module@serverId/HD_x/msgid goes to that exact server, every time', async () => {
    const p = await peer();
    for (let i = 0; i < 4; i++) {
      expect((await p.request(`pin@two/HD_who/t${i}`, '{}')).Result).toEqual({ server: 'two' });
      expect((await p.request(`pin@one/HD_who/o${i}`, '{}')).Result).toEqual({ server: 'one' });
    }
    const served = calls.filter((c) => c.fn === 'HD_who' && c.session.topic.startsWith('pin@'));
    for (const c of served) {
      const pinned = c.session.topic.startsWith('pin@two/') ? 'pin@two' : 'pin@one';
      expect(c.server).toBe(pinned);
    }
    expect(served).toHaveLength(8);
    // Without a pin both servers of the type take requests (rotation), so the pin was what chose.
    const unpinned = new Set<string>();
    for (let i = 0; i < 4; i++) unpinned.add(((await p.request(`pin/HD_who/u${i}`, '{}')).Result as { server: string }).server);
    expect([...unpinned].sort()).toEqual(['one', 'two']);
  });

  test('module@unknownServer gets a not-found Error reply', async () => {
    const p = await peer();
    const env = await p.request('pin@three/HD_who/1', '{}');
    expect(env.Error).toBe('Service(type:pin@three) not found');
    expect(env.Result).toBeNull();
  });

  // ---------------------------------------------------------------- routing errors

  describe('routing errors with a msgid get an Error reply on the request topic', () => {
    test('unknown module type: "Service(type:nomod) not found"', async () => {
      const p = await peer();
      const env = await p.request('nomod/HD_x/1', '{}');
      expect(env).toEqual({ Trace: expect.any(String), Error: 'Service(type:nomod) not found', Result: null });
    });

    test('unknown handler: the module error reaches the client', async () => {
      const p = await peer();
      const env = await p.request('echo/HD_nope/1', '{}');
      expect(env.Error).toContain('echo has no handler HD_nope');
      expect(env.Result).toBeNull();
    });

    test('a one-level topic is answered even without a msgid (as mqant)', async () => {
      const p = await peer();
      const env = await p.request('justone', '{}');
      expect(env.Error).toBe(TOPIC_FORM_ERROR);
      expect(env.Error).toBe('Topic must be [moduleType@moduleID]/[handler]|[moduleType@moduleID]/[handler]/[msgid]');
      expect(env.Result).toBeNull();
    });

    test('a handler not starting with HD_: "Method(echo) must begin with \'HD_\'"', async () => {
      const p = await peer();
      const before = calls.length;
      const env = await p.request('echo/echo/1', '{}');
      expect(env.Error).toBe("Method(echo) must begin with 'HD_'");
      expect(env.Result).toBeNull();
      expect(calls.length).toBe(before); // never dispatched
    });

    test('an empty module type with a msgid gets the topic-form error', async () => {
      const p = await peer();
      const env = await p.request('/HD_echo/1', '{}');
      expect(env.Error).toBe(TOPIC_FORM_ERROR);
    });
  });

  test('unroutable notifies (non-HD_ handler, unknown module, throwing handler) get no reply and the gate keeps serving', async () => {
    const p = await peer();
    const before = calls.length;
    p.publish('echo/echo', '{}');
    p.publish('nomod/HD_x', '{}');
    p.publish('echo/HD_throw', '{}');
    p.publish('echo/HD_nope', '{}');
    const env = await p.request('echo/HD_echo/still-alive', '{"ok":1}');
    expect(env).toEqual({ Trace: expect.any(String), Error: '', Result: { ok: 1 } });
    await p.request('echo/HD_echo/still-alive-2', '{"ok":2}');
    // Only the requests' replies arrived; none of the four notifies produced a message.
    expect(p.msgs.map((m) => m.topic)).toEqual(['echo/HD_echo/still-alive', 'echo/HD_echo/still-alive-2']);
    const fns = calls.slice(before).map((c) => c.fn);
    expect(fns).not.toContain('echo');
    expect(fns).toEqual(expect.arrayContaining(['HD_throw', 'HD_nope', 'HD_echo']));
    expect(h.gate.counts().total).toBeGreaterThanOrEqual(1);
  });

  test("a client cannot reach the gate's session service through a topic", async () => {
    const p = await peer();
    const sid = ((await p.request('echo/HD_session/me', '{}')).Result as SessionData).sessionId;
    const attempts = [`gate/HD_Bind/1`, `${h.gate.serverId}/HD_Bind/2`, `${h.gate.serverId}/Bind/3`, `gate/Bind/4`];
    for (const topic of attempts) {
      const env = await p.request(topic, JSON.stringify({ sessionId: sid, userId: 'intruder' }));
      expect(env.Error).not.toBe('');
      expect(env.Result).toBeNull();
    }
    expect(h.gate.getSession(sid)?.userId).toBe('');
    expect(h.gate.counts().bound).toBe(0);
  });

  // ---------------------------------------------------------------- QoS

  test.each([0, 1, 2] as const)('a request at QoS %i is replied at QoS 0', async (qos) => {
    const p = await peer();
    const reply = await p.ask(`echo/HD_echo/qos${qos}`, `{"q":${qos}}`, qos);
    expect(reply.qos).toBe(0);
    expect(JSON.parse(reply.payload.toString()).Result).toEqual({ q: qos });
  });

  test('raw client: reply PUBLISH at QoS 0 (no packet id) after PUBACK / PUBREC for QoS 1 / 2', async () => {
    const raw = await RawClient.open(h.tcpPort);
    try {
      await raw.connect({ clientId: 'routing-raw-qos' });
      raw.send({ cmd: 'publish', topic: 'echo/HD_echo/r1', payload: Buffer.from('{"r":1}'), qos: 1, messageId: 7, dup: false, retain: false });
      expect(await raw.next('puback')).toMatchObject({ messageId: 7 });
      const r1 = (await raw.next('publish', (p) => (p as { topic: string }).topic === 'echo/HD_echo/r1')) as {
        qos: number;
        payload: Buffer;
        messageId?: number;
      };
      expect(r1.qos).toBe(0);
      expect(JSON.parse(r1.payload.toString()).Result).toEqual({ r: 1 });

      raw.send({ cmd: 'publish', topic: 'echo/HD_echo/r2', payload: Buffer.from('{"r":2}'), qos: 2, messageId: 8, dup: false, retain: false });
      expect(await raw.next('pubrec')).toMatchObject({ messageId: 8 });
      raw.send({ cmd: 'pubrel', messageId: 8 });
      expect(await raw.next('pubcomp')).toMatchObject({ messageId: 8 });
      const r2 = (await raw.next('publish', (p) => (p as { topic: string }).topic === 'echo/HD_echo/r2')) as { qos: number; payload: Buffer };
      expect(r2.qos).toBe(0);
      expect(JSON.parse(r2.payload.toString()).Result).toEqual({ r: 2 });
    } finally {
      raw.destroy();
      await raw.closed;
    }
  });
});
