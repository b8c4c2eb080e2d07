/**
 * Resume after a dropped connection on the same gate: detached sessions, missed
 * pushes replayed in order with `replayed` / `recovered` / `lost`, single-use tokens on
 * `gate/session`, refusals that change nothing, the window's end, and logins that discard
 * detached sessions. Real sockets, MQTT.js clients.
 */
import { GateFunctions, MemoryUserIndex, gateClient, type SessionData } from '@mqgate/rpc';
import { detachedKey } from '@mqgate/rpc/internal';
import { resolveOptions, type GateOptions } from '@mqgate/gate';
import { startGate, type Harness } from './helpers/harness';
import { RecordingPeer, type Envelope, type Msg } from './helpers/peer';
import { waitUntil } from './helpers/waiters';

interface TokenPush {
  sessionId: string;
  userId: string;
  token: string;
  expiresAt: number;
}

class Client extends RecordingPeer {
  private seq = 0;
  private tokens = 0;
  /** The next `gate/session` push (after those already consumed by this call). */
  async nextToken(): Promise<TokenPush> {
    let seen = 0;
    const want = this.tokens++;
    const m = await this.next((x) => x.topic === 'gate/session' && seen++ >= want);
    return JSON.parse(m.payload.toString()) as TokenPush;
  }
  login(userId: string): Promise<Envelope> {
    return this.request(`user/HD_login/${++this.seq}`, JSON.stringify({ userId }));
  }
  resume(token: unknown): Promise<Envelope> {
    return this.request(`gate/HD_resume/${++this.seq}`, JSON.stringify({ token }));
  }
  /** Drops the TCP connection without a DISCONNECT (a network loss). */
  drop(): Promise<void> {
    this.client.stream.destroy();
    return this.closed;
  }
}

const harnesses: Harness[] = [];
const peers: Client[] = [];

async function gate(options: GateOptions = {}): Promise<Harness> {
  const h = await startGate({ websocket: false, ...options });
  harnesses.push(h);
  await h.serve('user', async (_fn, args) => {
    const s = args[0] as SessionData;
    const { userId } = args[1] as { userId: string };
    const bound = await gateClient(h.transport, s.serverId).bind(s.sessionId, userId);
    return { userId: bound.userId, sessionId: bound.sessionId };
  });
  return h;
}

async function open(h: Harness, opts = {}): Promise<Client> {
  const c = await Client.open(h.tcpUrl, opts);
  peers.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.client.endAsync(true)));
  await Promise.all(harnesses.splice(0).map((h) => h.stop()));
});

/** Logs in a new client and drops its connection; resolves once the gate holds the session detached. */
async function loggedInThenDropped(h: Harness, userId: string, opts = {}): Promise<{ token: TokenPush; sessionId: string }> {
  const c = await open(h, opts);
  const reply = await c.login(userId);
  expect(reply.Error).toBe('');
  const token = await c.nextToken();
  const sessionId = (reply.Result as { sessionId: string }).sessionId;
  const gone = new Promise<void>((resolve) => h.gate.on('disconnect', (s) => s.sessionId === sessionId && resolve()));
  await c.drop();
  await gone;
  return { token, sessionId };
}

const pushesOf = (c: Client, topic: string): string[] => c.msgs.filter((m: Msg) => m.topic === topic).map((m) => m.payload.toString());

describe('resume on the same gate', () => {
  test('the token push follows the bind reply; a dropped session is detached, its pushes buffered, then replayed in order after the Result', async () => {
    const h = await gate();
    const c = await open(h);
    const reply = await c.login('alice');
    const token = await c.nextToken();
    const sessionId = (reply.Result as { sessionId: string }).sessionId;
    expect(token).toMatchObject({ sessionId, userId: 'alice' });
    expect(token.token.length).toBeGreaterThanOrEqual(40);
    expect(token.expiresAt).toBeGreaterThan(Date.now());
    // The reply came first, then the token push.
    expect(c.msgs.map((m) => m.topic)).toEqual(['user/HD_login/1', 'gate/session']);
    await c.drop();
    await waitUntil('detached', () => h.gate.counts().detached === 1);
    expect(h.gate.counts()).toEqual({ total: 0, bound: 0, guests: 0, detached: 1 });
    expect(h.gate.send(sessionId, 'news/1', 'one')).toBe(true);
    expect(h.gate.broadcast('news/2', 'two')).toBe(1);
    // through the session service, as a module pushes
    await gateClient(h.transport, h.gate.serverId).sendBatch([sessionId], 'news/3', Buffer.from('three'));
    const resumed: unknown[] = [];
    h.gate.on('resume', (s, info) => resumed.push([s.sessionId, s.userId, info]));

    const d = await open(h);
    const answer = await d.resume(token.token);
    expect(answer.Error).toBe('');
    expect(answer.Result).toEqual({ userId: 'alice', sessionId, settings: {}, recovered: true, replayed: 3, lost: 0 });
    const next = await d.nextToken();
    expect(next.sessionId).toBe(sessionId);
    expect(next.token).not.toBe(token.token);
    expect(d.msgs.map((m) => m.topic)).toEqual(['gate/HD_resume/1', 'news/1', 'news/2', 'news/3', 'gate/session']);
    expect(resumed).toEqual([[sessionId, 'alice', { recovered: true, replayed: 3, lost: 0, from: 'local' }]]);
    expect(h.gate.counts()).toEqual({ total: 1, bound: 1, guests: 0, detached: 0 });
    // live traffic reaches the resumed session on its new connection
    expect(h.gate.send(sessionId, 'live', 'now')).toBe(true);
    await d.next((m) => m.topic === 'live');
    expect(h.gate.getSession(sessionId)?.userId).toBe('alice');
  });

  test('a used, a forged and a malformed token are refused and change nothing', async () => {
    const h = await gate();
    const { token, sessionId } = await loggedInThenDropped(h, 'bob');
    const d = await open(h);
    const forged = token.token.slice(0, -4) + (token.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    expect((await d.resume(forged)).Error).toBe('resume token expired or already used: log in again');
    expect((await d.resume('not-a-token')).Error).toBe('malformed resume token');
    expect((await d.resume(42)).Error).toMatch(/^resume token missing/);
    expect(h.gate.counts()).toMatchObject({ total: 1, bound: 0, guests: 1, detached: 1 });
    expect((await d.resume(token.token)).Result).toMatchObject({ sessionId, recovered: true });
    const e = await open(h);
    expect((await e.resume(token.token)).Error).toBe('resume token expired or already used: log in again');
    expect(h.gate.counts()).toMatchObject({ bound: 1, guests: 1, detached: 0 });
  });

  test('past resumeBufferMessages the oldest pushes are dropped: recovered false, lost counted, newest kept', async () => {
    const h = await gate({ resumeBufferMessages: 3 });
    const { token, sessionId } = await loggedInThenDropped(h, 'carol');
    for (let i = 1; i <= 5; i++) h.gate.send(sessionId, 'n', String(i));
    const d = await open(h);
    expect((await d.resume(token.token)).Result).toMatchObject({ recovered: false, replayed: 3, lost: 2 });
    await d.nextToken();
    expect(pushesOf(d, 'n')).toEqual(['3', '4', '5']);
  });

  test('past resumeBufferBytes the oldest pushes are dropped too', async () => {
    const h = await gate({ resumeBufferBytes: 3 * (100 + 1 + 64) });
    const { token, sessionId } = await loggedInThenDropped(h, 'dave');
    for (let i = 0; i < 4; i++) h.gate.send(sessionId, 'b', Buffer.alloc(100, 48 + i));
    const d = await open(h);
    expect((await d.resume(token.token)).Result).toMatchObject({ recovered: false, replayed: 3, lost: 1 });
    await d.nextToken();
    expect(pushesOf(d, 'b').map((p) => p[0])).toEqual(['1', '2', '3']);
  });

  test('the window ends: the session is freed, the user no longer in the index, the token refused', async () => {
    const index = new MemoryUserIndex();
    const h = await gate({ resumeWindow: 150, userIndex: index });
    const live = [{ serverId: h.gate.serverId, startedAt: 0 }];
    const { token, sessionId } = await loggedInThenDropped(h, 'erin');
    expect(h.gate.counts().detached).toBe(1);
    // not online, but recorded apart in the index, for pushes and resumes from other gates
    expect(await h.transport.call({ serverId: h.gate.serverId }, GateFunctions.IsConnect, ['', 'erin'])).toBe(false);
    await waitUntil('index entry moved', async () => (await index.locate(detachedKey('erin'), live)).length === 1);
    expect(await index.locate(detachedKey('erin'), live)).toEqual([expect.objectContaining({ sessionId })]);
    await waitUntil('window over', () => h.gate.counts().detached === 0);
    await waitUntil('index entry removed', async () => (await index.locate(detachedKey('erin'), live)).length === 0);
    expect(await index.locate('erin', live)).toEqual([]);
    const d = await open(h);
    expect((await d.resume(token.token)).Error).toBe('resume token expired or already used: log in again');
  });

  test('a login of the same user discards its detached sessions, which never block reject-new', async () => {
    const h = await gate({ duplicateLogin: { policy: 'reject-new' } });
    const { token } = await loggedInThenDropped(h, 'fay');
    const d = await open(h);
    expect((await d.login('fay')).Error).toBe('');
    expect(h.gate.counts()).toMatchObject({ bound: 1, detached: 0 });
    const e = await open(h);
    expect((await e.resume(token.token)).Error).toBe('resume token expired or already used: log in again');
  });

  test('not kept: guests, a clean DISCONNECT (3.1.1), an MQTT 5 client with Session Expiry 0; kept: MQTT 5 with Session Expiry above 0', async () => {
    const h = await gate();
    const guest = await open(h);
    await guest.drop();
    const clean = await open(h);
    await clean.login('gus');
    await clean.nextToken();
    await clean.client.endAsync();
    const v5zero = await open(h, { protocolVersion: 5 });
    await v5zero.login('hal');
    await v5zero.nextToken();
    await v5zero.drop();
    await waitUntil('all closed', () => h.gate.counts().total === 0);
    expect(h.gate.counts().detached).toBe(0);
    const v5 = await open(h, { protocolVersion: 5, properties: { sessionExpiryInterval: 30 } });
    await v5.login('ida');
    const token = await v5.nextToken();
    expect(token.expiresAt).toBeLessThanOrEqual(Date.now() + 30_000);
    await v5.client.endAsync(); // a clean DISCONNECT, but Session Expiry 30 s
    await waitUntil('detached', () => h.gate.counts().detached === 1);
  });

  test('not kept: a session closed by a module or the gate (Close without a reason, gate.kick): its token is refused', async () => {
    const h = await gate();
    const c = await open(h);
    await c.login('kim');
    const token = await c.nextToken();
    const sid = h.gate.sessionsOfUser('kim')[0].sessionId;
    await gateClient(h.transport, h.gate.serverId).close(sid); // mqant's Close(sessionId): no reason
    await c.closed;
    await waitUntil('closed', () => h.gate.counts().total === 0);
    expect(h.gate.counts().detached).toBe(0);
    const again = await open(h);
    expect((await again.resume(token.token)).Error).not.toBe('');
  });

  test('Bind and UnBind of a detached session fail with NO_SESSION and leave the user able to log in', async () => {
    const h = await gate();
    const c = await open(h);
    await c.login('lee');
    await c.nextToken();
    const sid = h.gate.sessionsOfUser('lee')[0].sessionId;
    await c.drop();
    await waitUntil('detached', () => h.gate.counts().detached === 1);
    const svc = gateClient(h.transport, h.gate.serverId);
    await expect(svc.unbind(sid, false)).rejects.toMatchObject({ code: 'NO_SESSION' });
    await expect(svc.bind(sid, 'other')).rejects.toMatchObject({ code: 'NO_SESSION' });
    const again = await open(h);
    expect((await again.login('lee')).Error).toBe('');
  });

  test('resumeWindow 0 turns resume off: no token, and a resume request is refused', async () => {
    const h = await gate({ resumeWindow: 0 });
    const c = await open(h);
    await c.login('jo');
    const d = await open(h);
    expect((await d.resume('r1.x.y.z')).Error).toMatch(/turned off/);
    expect(c.msgs.some((m) => m.topic === 'gate/session')).toBe(false);
  });
});

test('resumeWindow is at most 2 147 483 647 ms (the longest Node timer: a longer one would fire at once)', () => {
  expect(resolveOptions({ resumeWindow: 2_147_483_647 }).resumeWindow).toBe(2_147_483_647);
  expect(() => resolveOptions({ resumeWindow: 2_147_483_648 })).toThrow(/gate option resumeWindow must be at most 2147483647/);
});
