/**
 * JWT `exp` enforced on a live connection (closed with gate/kick "token expired", MQTT 5
 * DISCONNECT 0xA0), refreshed in band on gate/HD_refresh, and the public-key sources: a PEM
 * key and a JWKS served over HTTP on port 0, rotated by `kid`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as mqtt from 'mqtt';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type KeyLike } from 'jose';
import { Connections } from './helpers/connections';
import { mqttConnect, request, startGate, type Harness } from './helpers/harness';
import { closeOf, nextMessage, staysOpen, within } from './helpers/waiters';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const key = new TextEncoder().encode(SECRET);
const nowS = () => Math.floor(Date.now() / 1000);

function hs256(sub: string, ttlSeconds: number): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime(nowS() + ttlSeconds)
    .sign(key);
}

const conns = new Connections();
afterEach(() => conns.closeAll());

describe('expiry and refresh', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startGate({ jwt: { secret: SECRET, clockTolerance: 0, refreshInterval: 300 } });
  });
  afterAll(() => h.stop());

  const open = async (v: 4 | 5, sub: string, ttl: number) =>
    conns.mqtt(h.tcpUrl, { protocolVersion: v, clientId: `${sub}-${v}`, username: 'u', password: await hs256(sub, ttl) });

  test.each([4, 5] as const)(
    'level %i: at exp the client gets gate/kick {"reason":"token expired"} and is closed (MQTT 5: DISCONNECT 0xA0)',
    async (v) => {
      const c = await open(v, 'exp-user', 2);
      const kick = nextMessage(c, 'gate/kick');
      const disconnect = new Promise<mqtt.IDisconnectPacket>((resolve) => c.once('disconnect', resolve));
      const closed = closeOf(c);
      expect(JSON.parse((await within(kick, 4000, 'gate/kick')).toString())).toEqual({ reason: 'token expired' });
      await within(closed, 2000, 'close');
      if (v === 5) {
        const packet = await within(disconnect, 100, 'DISCONNECT');
        expect(packet.reasonCode).toBe(0xa0);
        expect(packet.properties?.reasonString).toBe('token expired');
      }
    },
  );

  test('a refresh with a later token for the same user moves the deadline; the connection outlives the first token', async () => {
    const c = await open(5, 'refresh-user', 2);
    const later = await hs256('refresh-user', 60);
    const reply = await within(request(c, 'gate/HD_refresh/1', JSON.stringify({ token: later })), 2000, 'refresh reply');
    expect(reply).toEqual({ Trace: expect.any(String), Error: '', Result: { exp: expect.any(Number) } });
    expect((reply.Result as { exp: number }).exp).toBeGreaterThan(nowS() + 30);
    // The first token's exp is at most 2 s away: still open 3 s from now.
    expect(await staysOpen(closeOf(c), 3000)).toBe(true);
  });

  test('3.1.1: refused refreshes leave the deadline; another sub, a bad token, no token, and a second one too soon', async () => {
    const c = await open(4, 'mallory', 60);
    const other = await request(c, 'gate/HD_refresh/a', JSON.stringify({ token: await hs256('someone-else', 600) }));
    expect(other).toMatchObject({ Error: 'USER_MISMATCH: the token is for another user', Result: null });
    const soon = await request(c, 'gate/HD_refresh/b', JSON.stringify({ token: await hs256('mallory', 600) }));
    expect(soon.Error).toBe('RATE_LIMITED: one refresh per 300 ms');
    await new Promise((r) => setTimeout(r, 320)); // the rate limit's own window
    const expired = await request(c, 'gate/HD_refresh/c', JSON.stringify({ token: await hs256('mallory', -10) }));
    expect(expired.Error).toBe('INVALID_TOKEN: token expired');
    await new Promise((r) => setTimeout(r, 320));
    expect((await request(c, 'gate/HD_refresh/d', '{}')).Error).toBe('BAD_ARGUMENT: {"token"} is required');
    expect(c.connected).toBe(true);
  });
});

describe('public keys', () => {
  test('a PEM public key (ES256): accepted; an HS256 token signed with the PEM text (alg confusion) and an RS256 one are refused', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const pem = await exportSPKI(publicKey);
    const g = await startGate({ jwt: { publicKey: pem, algorithms: ['ES256'] } });
    try {
      const good = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setSubject('pem-user').setExpirationTime('1h').sign(privateKey);
      const c = await mqttConnect(g.tcpUrl, { username: 'u', password: good });
      expect(g.gate.sessionsOfUser('pem-user')).toHaveLength(1);
      await c.endAsync();
      const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('pem-user').sign(new TextEncoder().encode(pem));
      await expect(mqttConnect(g.tcpUrl, { username: 'u', password: confused })).rejects.toMatchObject({ code: 4 });
      const rsa = await generateKeyPair('RS256');
      const rs = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('pem-user').sign(rsa.privateKey);
      await expect(mqttConnect(g.tcpUrl, { protocolVersion: 5, username: 'u', password: rs })).rejects.toMatchObject({ code: 0x86 });
    } finally {
      await g.stop();
    }
  });

  test('JWKS over HTTP: keys picked by kid, a rotated set fetched for a new kid, the retired key refused; an unreachable JWKS is 3 / 0x88', async () => {
    const a = await generateKeyPair('ES256');
    const b = await generateKeyPair('ES256');
    const jwk = async (k: KeyLike, kid: string): Promise<JWK> => ({ ...(await exportJWK(k)), kid, alg: 'ES256', use: 'sig' });
    let served: JWK[] = [await jwk(a.publicKey, 'key-a')];
    let fetches = 0;
    const server: Server = createServer((_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: served }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const g = await startGate({ jwt: { jwksUri: `http://127.0.0.1:${port}/jwks.json`, algorithms: ['ES256'], jwksCooldown: 0 } });
    const sign = (k: KeyLike, kid: string, sub: string) =>
      new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).setSubject(sub).setExpirationTime('1h').sign(k);
    try {
      const c1 = await mqttConnect(g.tcpUrl, { username: 'u', password: await sign(a.privateKey, 'key-a', 'jwks-1') });
      const c2 = await mqttConnect(g.tcpUrl, { username: 'u', password: await sign(a.privateKey, 'key-a', 'jwks-2') });
      expect(fetches).toBe(1); // cached
      served = [await jwk(b.publicKey, 'key-b')];
      const c3 = await mqttConnect(g.tcpUrl, { protocolVersion: 5, username: 'u', password: await sign(b.privateKey, 'key-b', 'jwks-3') });
      expect(fetches).toBe(2);
      expect(g.gate.sessionsOfUser('jwks-3')).toHaveLength(1);
      await expect(mqttConnect(g.tcpUrl, { username: 'u', password: await sign(a.privateKey, 'key-a', 'jwks-4') })).rejects.toMatchObject({
        code: 4,
      });
      await Promise.all([c1, c2, c3].map((c) => c.endAsync()));
    } finally {
      await g.stop();
      await new Promise((resolve) => server.close(resolve));
    }
    // The JWKS server is gone now.
    const down = await startGate({ jwt: { jwksUri: `http://127.0.0.1:${port}/jwks.json`, algorithms: ['ES256'] } });
    try {
      const t = await sign(a.privateKey, 'key-a', 'jwks-5');
      await expect(mqttConnect(down.tcpUrl, { username: 'u', password: t })).rejects.toMatchObject({ code: 3 });
      await expect(mqttConnect(down.tcpUrl, { protocolVersion: 5, username: 'u', password: t })).rejects.toMatchObject({ code: 0x88 });
    } finally {
      await down.stop();
    }
  });
});
