/**
 * Session limits (issue: hold up on the open internet, item 3): what one session may hold,
 * checked by the session service on Bind / Set / Push, and applied to what a StorageHandler
 * returns at Bind. A module calls the session service over the transport on the request's
 * session, as mqant modules do; the client is MQTT.js on a real socket.
 */
import { makeSessionData, type RpcError, type RpcValue, type SessionData } from '@mqgate/rpc';
import { MemoryStorage } from '@mqgate/storage';
import { startGate, type Harness } from './helpers/harness';
import { RecordingPeer } from './helpers/peer';

type Outcome = { ok: true; settings: Record<string, string>; userId: string } | { ok: false; code: string; message: string };

const LIMITS = { maxUserIdBytes: 16, maxSettings: 3, maxSettingKeyBytes: 8, maxSettingValueBytes: 32, maxSettingsBytes: 60 };

let h: Harness;
let storage: MemoryStorage;
let seq = 0;
const peers: RecordingPeer[] = [];

beforeAll(async () => {
  storage = new MemoryStorage();
  h = await startGate({ ...LIMITS, storage });
  // m/HD_call {"fn", "args"}: runs one session-service function on the request's own session.
  await h.serve('m', async (_fn, args) => {
    const session = args[0] as SessionData;
    const body = args[1] as { fn: string; args: RpcValue[] };
    try {
      const s = (await h.transport.call({ serverId: session.serverId }, body.fn, [session.sessionId, ...body.args])) as SessionData;
      return { ok: true, settings: { ...s.settings }, userId: s.userId };
    } catch (err) {
      return { ok: false, code: (err as RpcError).code, message: (err as RpcError).message };
    }
  });
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.end()));
});

afterAll(async () => {
  await h.stop();
  await storage.close();
});

async function call(p: RecordingPeer, fn: string, ...args: unknown[]): Promise<Outcome> {
  const env = await p.request(`m/HD_call/${++seq}`, JSON.stringify({ fn, args }));
  expect(env.Error).toBe('');
  return env.Result as Outcome;
}

async function peer(): Promise<RecordingPeer> {
  const p = await RecordingPeer.open(h.tcpUrl);
  peers.push(p);
  return p;
}

describe('a change past a limit fails with code LIMIT naming the limit, and changes nothing', () => {
  test.each<[string, string, unknown[], RegExp]>([
    ['a userId over maxUserIdBytes', 'Bind', ['u'.repeat(17)], /maxUserIdBytes 16/],
    ['a key over maxSettingKeyBytes', 'Set', ['k'.repeat(9), 'v'], /maxSettingKeyBytes 8/],
    ['a value over maxSettingValueBytes', 'Set', ['k', 'v'.repeat(33)], /maxSettingValueBytes 32/],
    ['a value over maxSettingValueBytes in UTF-8 bytes, not characters', 'Set', ['k', 'é'.repeat(17)], /34 bytes, over maxSettingValueBytes 32/],
    ['more keys than maxSettings', 'Push', [{ a: '1', b: '2', c: '3', d: '4' }], /4 settings, over maxSettings 3/],
    ['settings together over maxSettingsBytes', 'Push', [{ a: 'x'.repeat(30), b: 'y'.repeat(30) }], /over maxSettingsBytes 60/],
  ])('%s', async (_name, fn, args, message) => {
    const p = await peer();
    const before = await call(p, 'Update');
    const o = await call(p, fn, ...args);
    expect(o).toMatchObject({ ok: false, code: 'LIMIT' });
    expect((o as { message: string }).message).toMatch(message);
    expect(await call(p, 'Update')).toEqual(before);
  });

  test('a change that stays within the limits is accepted', async () => {
    const p = await peer();
    expect(await call(p, 'Push', { a: 'x'.repeat(25), b: 'y'.repeat(25) })).toMatchObject({ ok: true, settings: { a: 'x'.repeat(25) } });
    expect(await call(p, 'Set', 'c', '1')).toMatchObject({ ok: true });
    expect(await call(p, 'Set', 'd', '1')).toMatchObject({ ok: false, code: 'LIMIT' });
    // replacing a key's value does not count as a new key
    expect(await call(p, 'Set', 'c', '2')).toMatchObject({ ok: true, settings: { c: '2' } });
  });
});

describe('ill-formed Unicode (a lone surrogate) → BAD_ARGUMENT: Go protobuf would refuse the stored bytes', () => {
  test.each<[string, string, unknown[]]>([
    ['in a userId', 'Bind', ['a\ud800b']],
    ['in a key', 'Set', ['k\udc00', 'v']],
    ['in a value', 'Set', ['k', 'a\ud800b']],
  ])('%s', async (_name, fn, args) => {
    const p = await peer();
    const o = await call(p, fn, ...args);
    expect(o).toMatchObject({ ok: false, code: 'BAD_ARGUMENT' });
    expect((o as { message: string }).message).toMatch(/not well-formed Unicode/);
  });

  test('a surrogate pair (an emoji) is fine', async () => {
    const p = await peer();
    expect(await call(p, 'Set', 'k', '😀')).toMatchObject({ ok: true, settings: { k: '😀' } });
  });
});

test('what the StorageHandler returns at Bind is cut to the limits; live keys are kept first', async () => {
  // Stored by an earlier, unlimited gate: 5 keys, one key too long, one value too long.
  await storage.storage(makeSessionData({ userId: 'stored-1', settings: { a: '1', b: '2', longkey12: 'x', big: 'v'.repeat(40), c: '3', d: '4' } }));
  const p = await peer();
  expect(await call(p, 'Set', 'live', 'L')).toMatchObject({ ok: true });
  const o = await call(p, 'Bind', 'stored-1');
  expect(o).toMatchObject({ ok: true, userId: 'stored-1' });
  const settings = (o as { settings: Record<string, string> }).settings;
  // live first, then stored keys in order while they fit: a and b (maxSettings 3); the rest dropped
  expect(settings).toEqual({ live: 'L', a: '1', b: '2' });
});
