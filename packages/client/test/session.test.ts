import { InProcessTransport, RpcError, makeSessionData, type Logger } from '@mqgate/rpc';
import { Session, SessionVerbError } from '@mqgate/client';
import { FakeGate } from './helpers/fake-gate';

let transport: InProcessTransport;
let gate: FakeGate;

beforeEach(async () => {
  transport = new InProcessTransport();
  gate = await FakeGate.start(transport);
});

afterEach(async () => {
  await transport.close();
});

/** A session as a module would receive it, for a connection on the fake gate. */
function session(fields: Parameters<FakeGate['connect']>[0] = {}, options?: ConstructorParameters<typeof Session>[2]): Session {
  return new Session(gate.connect(fields), transport, options);
}

function text(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('utf8');
}

describe('local reads and edits', () => {
  it('exposes the session fields and a frozen copy of the settings', () => {
    const s = session({ userId: 'u1', topic: 'chat/HD_say/1', spanId: 'span-1', settings: { room: 'r1' } });
    expect([s.userId, s.ip, s.network, s.serverId, s.traceId, s.spanId, s.topic]).toEqual([
      'u1',
      '10.0.0.9',
      'tcp',
      'gate@fake',
      'trace-1',
      'span-1',
      'chat/HD_say/1',
    ]);
    expect(s.sessionId).toMatch(/^sess/);
    const settings = s.settings;
    expect(settings).toEqual({ room: 'r1' });
    expect(Object.isFrozen(settings)).toBe(true);
    s.setLocal('room', 'r2');
    expect(settings.room).toBe('r1');
    expect(s.get('room')).toBe('r2');
  });

  it('get() returns undefined for missing keys, including Object.prototype names', () => {
    const s = session();
    expect(s.get('missing')).toBeUndefined();
    expect(s.get('toString')).toBeUndefined();
  });

  it('setLocal/removeLocal change only the local copy', async () => {
    const s = session({ settings: { a: '1' } });
    s.setLocal('b', '2');
    s.removeLocal('a');
    expect(s.settings).toEqual({ b: '2' });
    expect(gate.calls).toHaveLength(0);
    expect(gate.session(s.sessionId)?.settings).toEqual({ a: '1' });
  });

  it('stores a "__proto__" key as a plain setting', () => {
    const s = session();
    s.setLocal('__proto__', 'x');
    expect(s.get('__proto__')).toBe('x');
    expect(Object.keys(s.settings)).toEqual(['__proto__']);
  });
});

describe('push sends only what changed', () => {
  it('sends exactly the dirty keys, then Update when nothing is dirty', async () => {
    const s = session({ settings: { old: 'o' } });
    s.setLocal('a', '1');
    s.setLocal('b', '2');
    await s.push();
    expect(gate.calls).toEqual([{ fn: 'Push', args: [s.sessionId, { a: '1', b: '2' }] }]);
    expect(s.settings).toEqual({ old: 'o', a: '1', b: '2' });

    await s.push();
    expect(gate.calls.slice(1)).toEqual([{ fn: 'Update', args: [s.sessionId] }]);
  });

  it('sends local removals through Remove', async () => {
    const s = session({ settings: { x: '1', y: '2', z: '3' } });
    s.setLocal('a', '1');
    s.removeLocal('x');
    await s.push();
    expect(gate.calls).toEqual([
      { fn: 'Push', args: [s.sessionId, { a: '1' }] },
      { fn: 'Remove', args: [s.sessionId, 'x'] },
    ]);
    s.removeLocal('y');
    s.removeLocal('z');
    await s.push();
    expect(gate.calls[2]).toEqual({ fn: 'Remove', args: [s.sessionId, ['y', 'z']] });
    expect(gate.session(s.sessionId)?.settings).toEqual({ a: '1' });
    expect(s.settings).toEqual({ a: '1' });
  });

  it('does not overwrite a newer value another module wrote to a key it did not change', async () => {
    const s = session({ settings: { score: '1', name: 'n' } });
    gate.patch(s.sessionId, { settings: { score: '99', name: 'n' } });
    s.setLocal('name', 'm');
    await s.push();
    expect(gate.session(s.sessionId)?.settings).toEqual({ score: '99', name: 'm' });
    expect(s.get('score')).toBe('99');
  });

  it('keeps an edit made while its push was in flight', async () => {
    const s = session();
    s.setLocal('a', '1');
    const held = gate.pause('Push');
    const pushing = s.push();
    await held.reached;
    s.setLocal('a', '2');
    held.release();
    await pushing;
    expect(s.get('a')).toBe('2');
    await s.push();
    expect(gate.callsTo('Push').map((c) => c.args[1])).toEqual([{ a: '1' }, { a: '2' }]);
  });

  it('setPush sends the key together with earlier local edits', async () => {
    const s = session();
    s.setLocal('a', '1');
    await s.setPush('b', '2');
    expect(gate.calls).toEqual([{ fn: 'Push', args: [s.sessionId, { a: '1', b: '2' }] }]);
    await s.push();
    expect(gate.calls[1].fn).toBe('Update');
  });

  it('setBatch sends exactly its map and keeps the other dirty keys', async () => {
    const s = session();
    s.setLocal('p', 'local');
    await s.setBatch({ x: '1', y: '2' });
    expect(gate.calls).toEqual([{ fn: 'Push', args: [s.sessionId, { x: '1', y: '2' }] }]);
    expect(s.settings).toEqual({ p: 'local', x: '1', y: '2' });
    await s.push();
    expect(gate.calls[1]).toEqual({ fn: 'Push', args: [s.sessionId, { p: 'local' }] });
  });
});

describe('verbs that change the session', () => {
  it('set() sends one key and keeps unsent local edits after the refresh', async () => {
    const s = session();
    s.setLocal('p', 'local');
    s.removeLocal('gone');
    gate.patch(s.sessionId, { settings: { gone: 'still-on-gate', other: 'o' } });
    await s.set('k', 'v');
    expect(gate.calls).toEqual([{ fn: 'Set', args: [s.sessionId, 'k', 'v'] }]);
    expect(s.settings).toEqual({ p: 'local', k: 'v', other: 'o' });
    await s.push();
    expect(gate.calls.slice(1)).toEqual([
      { fn: 'Push', args: [s.sessionId, { p: 'local' }] },
      { fn: 'Remove', args: [s.sessionId, 'gone'] },
    ]);
  });

  it('set() of a dirty key clears it', async () => {
    const s = session();
    s.setLocal('k', 'old');
    await s.set('k', 'new');
    expect(s.get('k')).toBe('new');
    await s.push();
    expect(gate.calls[1].fn).toBe('Update');
  });

  it('bind/unbind change the user and refresh the copy, keeping topic and span', async () => {
    const s = session({ topic: 'user/HD_login', spanId: 'span-9' });
    gate.patch(s.sessionId, { settings: { restored: 'yes' } });
    expect(s.isGuest()).toBe(true);
    await s.bind('u1');
    expect(gate.calls).toEqual([{ fn: 'Bind', args: [s.sessionId, 'u1'] }]);
    expect(s.userId).toBe('u1');
    expect(s.isGuest()).toBe(false);
    expect(s.get('restored')).toBe('yes');
    expect(s.topic).toBe('user/HD_login');
    expect(s.spanId).toBe('span-9');
    await s.unbind();
    expect(gate.calls[1]).toEqual({ fn: 'UnBind', args: [s.sessionId, false] });
    expect(s.userId).toBe('');
    expect(gate.session(s.sessionId)?.userId).toBe('');
  });

  it('update() pulls the gate copy', async () => {
    const s = session();
    gate.patch(s.sessionId, { userId: 'u7', settings: { k: 'v' } });
    await s.update();
    expect(s.userId).toBe('u7');
    expect(s.settings).toEqual({ k: 'v' });
  });

  it('remove() deletes one key on the gate and locally', async () => {
    const s = session({ settings: { a: '1', b: '2' } });
    await s.remove('a');
    expect(gate.calls).toEqual([{ fn: 'Remove', args: [s.sessionId, 'a'] }]);
    expect(s.settings).toEqual({ b: '2' });
    expect(gate.session(s.sessionId)?.settings).toEqual({ b: '2' });
  });
});

describe('messages and queries', () => {
  it('send() encodes strings as UTF-8, objects as JSON and passes bytes as is', async () => {
    const s = session();
    const bytes = Buffer.from([1, 2, 3]);
    await s.send('t/1', 'héllo');
    await s.send('t/2', { a: 1 });
    await s.send('t/3', bytes);
    expect(gate.deliveries.map((d) => d.topic)).toEqual(['t/1', 't/2', 't/3']);
    expect(text(gate.deliveries[0].body)).toBe('héllo');
    expect(JSON.parse(text(gate.deliveries[1].body))).toEqual({ a: 1 });
    expect(gate.deliveries[2].body).toBe(bytes);
    expect(gate.calls[0].args[0]).toBe(s.sessionId);
  });

  it('sendNR() returns at once, delivers, and never throws', async () => {
    const s = session();
    const delivered = gate.nextDelivery();
    expect(s.sendNR('t/nr', 'x')).toBeUndefined();
    const d = await delivered;
    expect([d.sessionId, d.topic, text(d.body)]).toEqual([s.sessionId, 't/nr', 'x']);
  });

  it('sendNR() swallows bad arguments, gate errors and a missing gate, and logs them', async () => {
    const dropped: string[] = [];
    let seen!: () => void;
    const allSeen = new Promise<void>((r) => (seen = r));
    const logger: Logger = {
      debug: (fields) => {
        dropped.push((fields as { err: string }).err);
        if (dropped.length === 2) seen();
      },
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined,
    };
    const s = new Session(makeSessionData({ sessionId: 'unknown', serverId: 'gate@fake' }), transport, { logger });
    const orphan = new Session(makeSessionData({ sessionId: 'x', serverId: 'gate@nowhere' }), transport, { logger });
    expect(() => s.sendNR('', 'x')).not.toThrow();
    expect(() => s.sendNR('t', 'x')).not.toThrow();
    expect(() => orphan.sendNR('t', 'x')).not.toThrow();
    await allSeen;
    // The gate's NO_SESSION answer to the second call is dropped by callNR itself (no reply).
    expect(dropped).toHaveLength(2);
    expect(dropped[0]).toMatch(/topic must be a non-empty string/);
    expect(dropped[1]).toMatch(/Service\(type:gate@nowhere\) not found/);
  });

  it('sendBatch() joins the ids and returns the count; broadcast() counts everyone', async () => {
    const a = session();
    const b = session();
    const n = await a.sendBatch([a.sessionId, b.sessionId, 'sess-gone'], 'news', 'hi');
    expect(n).toBe(2);
    expect(gate.calls[0].args[0]).toBe(`${a.sessionId},${b.sessionId},sess-gone`);
    expect(await a.sendBatch([], 'news', 'hi')).toBe(0);
    expect(gate.calls).toHaveLength(1);
    expect(await b.broadcast('all', { x: 1 })).toBe(2);
    expect(gate.calls[1]).toEqual({ fn: 'BroadCast', args: ['all', Buffer.from('{"x":1}')] });
  });

  it('isConnect() answers true or false', async () => {
    const s = session({ userId: 'u1' });
    gate.patch(s.sessionId, { userId: 'u1' });
    await expect(s.isConnect('u1')).resolves.toBe(true);
    await expect(s.isConnect('u2')).resolves.toBe(false);
    expect(gate.calls[0]).toEqual({ fn: 'IsConnect', args: [s.sessionId, 'u1'] });
  });

  it('close() passes the reason; later verbs fail with NO_SESSION', async () => {
    const s = session();
    await s.close('kicked');
    expect(gate.calls[0]).toEqual({ fn: 'Close', args: [s.sessionId, 'kicked'] });
    await expect(s.update()).rejects.toMatchObject({ code: 'NO_SESSION', verb: 'update' });
  });
});

describe('typed errors', () => {
  it('an unknown session gives a SessionVerbError with verb, code and cause', async () => {
    const s = new Session(makeSessionData({ sessionId: '3f9c01ab77aa0000', serverId: 'gate@fake' }), transport);
    const err: unknown = await s.bind('u1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SessionVerbError);
    expect(err).toBeInstanceOf(RpcError);
    const e = err as SessionVerbError;
    expect([e.verb, e.code, e.sessionId, e.name]).toEqual(['bind', 'NO_SESSION', '3f9c01ab77aa0000', 'SessionVerbError']);
    expect(e.cause).toBeInstanceOf(RpcError);
    expect(e.message).toBe(`Session.bind("u1") failed for session 3f9c01ab…: ${e.cause.message}`);
  });

  it('a missing gate gives NO_SERVER and a silent gate DEADLINE', async () => {
    const orphan = new Session(makeSessionData({ sessionId: 's', serverId: 'gate@gone' }), transport);
    await expect(orphan.push()).rejects.toMatchObject({ verb: 'push', code: 'NO_SERVER' });

    const s = session({}, { timeout: 50 });
    gate.pause('Send');
    await expect(s.send('t', 'x')).rejects.toMatchObject({ verb: 'send', code: 'DEADLINE' });
  });

  it('a failed push keeps the edits pending', async () => {
    const s = session();
    s.setLocal('a', '1');
    const data = s.toData();
    await gate.stop();
    await expect(s.push()).rejects.toMatchObject({ code: 'NO_SERVER' });
    expect(s.get('a')).toBe('1');
    gate = await FakeGate.start(transport);
    gate.connect({ sessionId: data.sessionId });
    await s.push();
    expect(gate.calls).toEqual([{ fn: 'Push', args: [s.sessionId, { a: '1' }] }]);
  });

  it('a malformed gate answer is BAD_REPLY', async () => {
    await transport.serve({ serverId: 'gate@odd', moduleType: 'gate' }, () => 'not a session');
    const s = new Session(makeSessionData({ sessionId: 's', serverId: 'gate@odd' }), transport);
    await expect(s.update()).rejects.toMatchObject({ code: 'BAD_REPLY', verb: 'update' });
    await expect(s.broadcast('t', 'x')).rejects.toMatchObject({ code: 'BAD_REPLY', verb: 'broadcast' });
  });

  it('bad arguments throw a TypeError naming the verb and the argument', async () => {
    const s = session();
    await expect(s.bind('')).rejects.toThrow(new TypeError('Session.bind: userId must be a non-empty string, got an empty string'));
    await expect(s.set('k', 5 as unknown as string)).rejects.toThrow(/^Session\.set: value must be a string, got number$/);
    await expect(s.setBatch({ a: 1 } as unknown as Record<string, string>)).rejects.toThrow(/Session\.setBatch: settings\["a"\] must be a string/);
    await expect(s.send('t', 5 as unknown as string)).rejects.toThrow(/Session\.send: body must be/);
    await expect(s.broadcast('news/#', 'x')).rejects.toThrow(/Session\.broadcast: topic "news\/#" must not hold an MQTT wildcard/);
    await expect(s.sendBatch(['a,b'], 't', 'x')).rejects.toThrow(/Session\.sendBatch: sessionIds\[0\]/);
    await expect(s.isConnect(undefined as unknown as string)).rejects.toThrow(/Session\.isConnect: userId/);
    expect(() => s.setLocal('', 'v')).toThrow(/Session\.setLocal: key/);
    expect(gate.calls).toHaveLength(0);
  });
});

describe('guest rule, clone and serialisation', () => {
  const rule = (s: Session): boolean => s.userId.startsWith('guest-');

  it('uses the rule given at construction, and keeps it through clone() and deserialize()', () => {
    const s = session({ userId: 'guest-7' }, { guestRule: rule });
    expect(s.isGuest()).toBe(true);
    expect(s.clone().isGuest()).toBe(true);
    expect(Session.deserialize(s.serialize(), transport, { guestRule: rule }).isGuest()).toBe(true);
    expect(Session.deserialize(s.serialize(), transport).isGuest()).toBe(false);
  });

  it('judgeGuest() sets a per-instance rule that clone() keeps', () => {
    const s = session({ userId: 'u1' });
    expect(s.isGuest()).toBe(false);
    s.judgeGuest(() => true);
    expect(s.isGuest()).toBe(true);
    expect(s.clone().isGuest()).toBe(true);
    s.judgeGuest(undefined);
    expect(s.isGuest()).toBe(false);
    expect(() => s.judgeGuest('yes' as unknown as () => boolean)).toThrow(TypeError);
  });

  it('clone() keeps topic, gets a new span, and owns its settings and pending edits', async () => {
    const s = session({ topic: 'room/HD_join', spanId: 'span-1', settings: { a: '1' } });
    s.setLocal('dirty', 'd');
    const c = s.clone();
    expect(c.topic).toBe('room/HD_join');
    expect(c.spanId).not.toBe('span-1');
    expect(c.spanId).toMatch(/^[0-9a-f]{16}$/);
    c.setLocal('a', '2');
    expect(s.get('a')).toBe('1');
    await c.push();
    expect(gate.calls[0].args[1]).toEqual({ dirty: 'd', a: '2' });
  });

  it('serialize() and deserialize() round-trip every field', () => {
    const s = session({ userId: 'u1', topic: 't/HD_x', spanId: 'sp', settings: { k: 'v' } });
    s.setLocal('local', 'l');
    const back = Session.deserialize(s.serialize(), transport);
    expect(back.toData()).toEqual(s.toData());
    expect(() => Session.deserialize(Buffer.from([0x0a, 0x09, 0x41]), transport)).toThrow(/Session\.deserialize: not a SessionImp message/);
  });
});

// MQTT 5: protocolVersion and push properties.
describe('Session and MQTT 5 clients', () => {
  test('protocolVersion is the connection level, 0 when the gate did not say', () => {
    expect(new Session(gate.connect({ protocolVersion: 5 }), transport).protocolVersion).toBe(5);
    expect(new Session(makeSessionData({ sessionId: 's' }), transport).protocolVersion).toBe(0);
  });

  test('push properties travel as an extra last argument only when given (mqant sends three)', async () => {
    const s = new Session(gate.connect({ protocolVersion: 5 }), transport);
    await s.send('t', 'plain');
    await s.send('t', 'rich', { userProperties: { a: 'b' }, contentType: 'text/plain', messageExpiryInterval: 30 });
    const sends = gate.callsTo('Send');
    expect(sends[0].args).toHaveLength(3);
    expect(sends[1].args[3]).toEqual({ userProperties: { a: 'b' }, contentType: 'text/plain', messageExpiryInterval: 30 });
    await s.broadcast('t', 'all', { contentType: 'text/plain' });
    expect(gate.callsTo('BroadCast')[0].args[2]).toEqual({ contentType: 'text/plain' });
    await s.sendBatch([s.sessionId], 't', 'b', { userProperties: { x: 'y' } });
    expect(gate.callsTo('SendBatch')[0].args[3]).toEqual({ userProperties: { x: 'y' } });
  });

  test('bad push properties throw a TypeError naming the verb', async () => {
    const s = new Session(gate.connect(), transport);
    await expect(s.send('t', 'x', { messageExpiryInterval: 0 })).rejects.toThrow(/Session.send: messageExpiryInterval/);
    await expect(s.broadcast('t', 'x', { userProperties: { a: [1] as unknown as string[] } })).rejects.toThrow(
      /Session.broadcast: userProperties\["a"\]/,
    );
  });
});
