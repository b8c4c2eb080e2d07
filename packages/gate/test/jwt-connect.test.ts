/**
 * JWT at CONNECT (gate option `jwt`): a valid token binds the session to its user
 * before the CONNACK (user index under the duplicate-login policy, StorageHandler Query and
 * merge); an invalid one gets CONNACK 4 / 5 (MQTT 5: 0x86 / 0x87). MQTT.js at 3.1.1 and 5,
 * tokens minted with jose, real sockets.
 */
import * as mqtt from 'mqtt';
import { SignJWT, type JWTPayload } from 'jose';
import type { SessionData } from '@mqgate/rpc';
import type { StorageHandler } from '@mqgate/storage';
import { MemoryStorage } from '@mqgate/storage';
import type { ConnectInfo } from '@mqgate/gate';
import { Connections } from './helpers/connections';
import { mqttConnect, request, startGate, type Harness } from './helpers/harness';
import { within } from './helpers/waiters';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const key = new TextEncoder().encode(SECRET);
const ISSUER = 'mqgate-test';
const AUDIENCE = 'devices';

/** An HS256 token for `sub` from ISSUER to AUDIENCE, valid for an hour, unless `claims` / `opts` say otherwise. */
async function token(
  sub: string | undefined,
  claims: JWTPayload = {},
  opts: { alg?: string; secret?: Uint8Array; exp?: number } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ iss: ISSUER, aud: AUDIENCE, exp: opts.exp ?? now + 3600, iat: now, ...claims }).setProtectedHeader({
    alg: opts.alg ?? 'HS256',
  });
  if (sub !== undefined) jwt.setSubject(sub);
  return jwt.sign(opts.secret ?? key);
}

const seen: ConnectInfo[] = [];
let hookAnswer = true;
const store = new MemoryStorage();
let h: Harness;
const conns = new Connections();

beforeAll(async () => {
  h = await startGate({
    storage: store,
    jwt: { secret: SECRET, issuer: ISSUER, audience: AUDIENCE },
    authenticate: (info) => {
      seen.push(info);
      return hookAnswer;
    },
  });
  // The session a handler sees: what the first request after CONNECT runs with.
  await h.serve('svc', async (fn, args) => {
    const s = args[0] as SessionData;
    return fn === 'HD_whoami' ? { userId: s.userId, settings: s.settings } : null;
  });
});
beforeEach(() => {
  seen.length = 0;
  hookAnswer = true;
});
afterEach(() => conns.closeAll());
afterAll(async () => {
  await h.stop();
  await store.close();
});

const v5 = (v: 4 | 5) => v === 5;
/** The refusal MQTT.js reports: the 3.1.1 return code, or the MQTT 5 reason code. */
const refusal = (v: 4 | 5, code: 4 | 5) => (v5(v) ? { 4: 0x86, 5: 0x87 }[code] : code);

describe.each([4, 5] as const)('MQTT.js at level %i', (v) => {
  test('a valid token as the password binds the session at CONNECT; the first request sees the user and the stored settings', async () => {
    const user = `alice-${v}`;
    await store.storage({ userId: user, settings: { color: 'red' } } as unknown as SessionData);
    const connected = new Promise<SessionData>((resolve) => h.gate.once('connect', resolve));
    const c = await conns.mqtt(h.tcpUrl, { protocolVersion: v, clientId: `jwt-ok-${v}`, username: 'any', password: await token(user) });
    expect((await connected).userId).toBe(user);
    // Sent at once after CONNACK: the bind and the store's Query were done before it.
    const reply = await within(request(c, 'svc/HD_whoami/1', '{}'), 2000, 'reply');
    expect(reply).toMatchObject({ Error: '', Result: { userId: user, settings: { color: 'red' } } });
    expect(h.gate.sessionsOfUser(user)).toHaveLength(1);
    expect(h.gate.counts().bound).toBeGreaterThanOrEqual(1);
  });

  test('the authenticate hook runs after verification and sees the claims; its refusal stands', async () => {
    await conns.mqtt(h.tcpUrl, {
      protocolVersion: v,
      clientId: `jwt-hook-${v}`,
      username: 'u',
      password: await token(`bob-${v}`, { role: 'admin' }),
    });
    expect(seen).toHaveLength(1);
    expect(seen[0].jwt).toMatchObject({ sub: `bob-${v}`, iss: ISSUER, aud: AUDIENCE, role: 'admin' });
    hookAnswer = false;
    await expect(
      mqttConnect(h.tcpUrl, { protocolVersion: v, clientId: `jwt-hook-no-${v}`, username: 'u', password: await token(`bob-${v}`) }),
    ).rejects.toMatchObject({
      code: refusal(v, 5),
    });
    expect(h.gate.sessionsOfUser(`bob-${v}`)).toHaveLength(1); // the first one only
  });

  const now = () => Math.floor(Date.now() / 1000);
  test.each([
    ['a bad signature', 4, () => token('eve', {}, { secret: new TextEncoder().encode('another-secret-of-at-least-32-bytes') })],
    ['a wrong alg (HS384, not allowed)', 4, () => token('eve', {}, { alg: 'HS384' })],
    [
      'alg none',
      4,
      async () =>
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'eve', iss: ISSUER, aud: AUDIENCE })).toString('base64url')}.`,
    ],
    ['an expired token', 4, () => token('eve', {}, { exp: now() - 60 })],
    ['not a JWT', 4, async () => 'not.a.jwt'],
    ['an oversized token (over maxTokenBytes 8192)', 4, () => token('eve', { pad: 'x'.repeat(9000) })],
    ['a wrong issuer', 5, () => token('eve', { iss: 'someone-else' })],
    ['a wrong audience', 5, () => token('eve', { aud: 'other' })],
    ['an empty sub', 5, () => token('')],
    ['no sub', 5, () => token(undefined)],
    ['a sub over maxUserIdBytes (256)', 5, () => token('u'.repeat(257))],
  ] as Array<[string, 4 | 5, () => Promise<string>]>)('%s is refused with CONNACK %i', async (_name, code, make) => {
    const password = await make();
    await expect(mqttConnect(h.tcpUrl, { protocolVersion: v, clientId: `jwt-bad-${v}`, username: 'u', password })).rejects.toMatchObject({
      code: refusal(v, code),
    });
    expect(seen).toHaveLength(0); // the hook never sees a token that did not verify
    expect(h.gate.sessionsOfUser('eve')).toHaveLength(0);
  });

  test('no token at all is refused with CONNACK 4 / 0x86', async () => {
    await expect(mqttConnect(h.tcpUrl, { protocolVersion: v, clientId: `jwt-none-${v}` })).rejects.toMatchObject({ code: refusal(v, 4) });
  });
});

describe('MQTT 5 Authentication Method JWT', () => {
  test('the token as Authentication Data is accepted (no password), and the CONNACK echoes the method', async () => {
    const c = mqtt.connect(h.tcpUrl, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      clientId: 'jwt-authdata',
      properties: { authenticationMethod: 'JWT', authenticationData: Buffer.from(await token('carol')) },
    });
    conns.clients.push(c);
    const connack = await within(
      new Promise<mqtt.IConnackPacket>((resolve, reject) => {
        c.once('connect', resolve);
        c.once('error', reject);
      }),
      3000,
      'CONNACK',
    );
    expect(connack.properties?.authenticationMethod).toBe('JWT');
    expect((await request(c, 'svc/HD_whoami/1', '{}')).Result).toMatchObject({ userId: 'carol' });
  });

  test('another Authentication Method is refused with 0x8C', async () => {
    await expect(
      mqttConnect(h.tcpUrl, {
        protocolVersion: 5,
        clientId: 'jwt-other-method',
        properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from('x') },
      }),
    ).rejects.toMatchObject({ code: 0x8c });
  });
});

describe('duplicate login and the store', () => {
  test('reject-new: a second CONNECT with a token for the same user is refused (5 / 0x87) while the first is connected', async () => {
    const g = await startGate({ jwt: { secret: SECRET }, duplicateLogin: { policy: 'reject-new' } });
    try {
      const first = await mqttConnect(g.tcpUrl, { clientId: 'dup-1', username: 'u', password: await token('dana') });
      for (const v of [4, 5] as const) {
        await expect(
          mqttConnect(g.tcpUrl, { protocolVersion: v, clientId: `dup-2-${v}`, username: 'u', password: await token('dana') }),
        ).rejects.toMatchObject({
          code: refusal(v, 5),
        });
      }
      expect(g.gate.sessionsOfUser('dana')).toHaveLength(1);
      const left = new Promise((resolve) => g.gate.once('disconnect', resolve));
      await first.endAsync();
      await left;
      const again = await mqttConnect(g.tcpUrl, { clientId: 'dup-3', username: 'u', password: await token('dana') });
      expect(g.gate.sessionsOfUser('dana')).toHaveLength(1);
      await again.endAsync();
    } finally {
      await g.stop();
    }
  });

  test('a store that fails at Query does not refuse the CONNECT: the session is bound all the same', async () => {
    const failing: StorageHandler = {
      query: () => Promise.reject(new Error('store down')),
      storage: () => Promise.reject(new Error('store down')),
      delete: () => Promise.resolve(),
      heartbeat: () => Promise.resolve(),
    };
    const g = await startGate({ jwt: { secret: SECRET }, storage: failing, storageRetryDelay: 60_000 });
    g.gate.on('storageError', () => undefined);
    try {
      const c = await mqttConnect(g.tcpUrl, { clientId: 'store-down', username: 'u', password: await token('erin') });
      expect(g.gate.sessionsOfUser('erin')).toHaveLength(1);
      await c.endAsync();
    } finally {
      await g.stop();
    }
  });
});

describe('option checks', () => {
  test.each([
    ['no key source', {}],
    ['two key sources', { secret: SECRET, jwksUri: 'http://127.0.0.1:1/jwks' }],
    ['a short secret', { secret: 'short' }],
    ['an RS alg with a secret', { secret: SECRET, algorithms: ['RS256'] }],
    ['a public key without algorithms', { jwksUri: 'http://127.0.0.1:1/jwks' }],
    ['HS256 with a public key (alg confusion)', { jwksUri: 'http://127.0.0.1:1/jwks', algorithms: ['HS256'] }],
    ['alg none', { secret: SECRET, algorithms: ['none'] }],
    ['a PEM that is not a key', { publicKey: 'not a pem', algorithms: ['RS256'] }],
  ])('%s throws at construction', async (_name, jwt) => {
    await expect(startGate({ jwt })).rejects.toThrow(/gate option jwt/);
  });
});
