/**
 * Admission at the door on a real gate with real sockets: the connect rate and
 * the per-address cap close a socket before CONNECT is read (no CONNACK) and are counted in
 * mqgate_admission_refused_total; flapping bans a client id (CONNACK 5 / 0x8A) until the ban
 * ends; gate.ban by ip, client id and user id refuses at accept, at CONNECT and at Bind and
 * kicks the live sessions; connectTimeout runs from the TCP accept through the WebSocket
 * upgrade (headers trickled byte by byte are cut); the default maxKeepalive holds.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { SignJWT } from 'jose';
import { makeTestPki } from '@mqgate/test-support';
import { GateFunctions, RpcError, type SessionData } from '@mqgate/rpc';
import { Connections } from './helpers/connections';
import { startGate, type Harness } from './helpers/harness';
import { closeOf, staysOpen, waitUntil, within } from './helpers/waiters';
import { RawV5Peers } from './v5-support';

const conns = new Connections();
const v5 = new RawV5Peers();
let h: Harness | undefined;
afterEach(async () => {
  await conns.closeAll();
  await v5.closeAll();
  await h?.stop();
  h = undefined;
});

async function refusedCounts(gate: Harness): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${gate.gate.addresses().metrics!.port}/metrics`);
  const out: Record<string, number> = {};
  for (const line of (await res.text()).split('\n')) {
    const m = /^mqgate_admission_refused_total\{reason="(\w+)"\} (\d+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

test('connectRate: past the burst a socket is closed before CONNECT is read, and admitted again once the bucket refills', async () => {
  h = await startGate({ connectRate: { perSecond: 5, burst: 3 }, metricsPort: 0, metricsHost: '127.0.0.1' });
  for (let i = 0; i < 3; i++) await conns.connectedRaw(h.tcpPort, `rate-${i}`);
  const refused = await conns.raw(h.tcpPort);
  await within(refused.closed, 5000, 'the 4th connection is closed');
  expect(refused.packets).toEqual([]);
  expect(await refusedCounts(h)).toEqual({ connectRate: 1 });
  // 5 per second: a token within 200 ms; retry until then (bounded)
  await waitUntil(
    'a connection is admitted again',
    async () => {
      const c = await conns.raw(h!.tcpPort);
      c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'later', keepalive: 60 });
      return Promise.race([c.next('connack').then(() => true), c.closed.then(() => false)]);
    },
    5000,
    50,
  );
});

test('maxConnectionsPerIp: at the cap one more is refused (no CONNACK), below it admitted', async () => {
  h = await startGate({ maxConnectionsPerIp: 2, metricsPort: 0, metricsHost: '127.0.0.1' });
  await conns.connectedRaw(h.tcpPort, 'a');
  const b = await conns.connectedRaw(h.tcpPort, 'b');
  const c = await conns.raw(h.tcpPort);
  await within(c.closed, 5000, 'the 3rd connection is closed');
  expect(c.packets).toEqual([]);
  b.destroy();
  await waitUntil('b is released', () => h!.gate.stats().connections === 1);
  await conns.connectedRaw(h.tcpPort, 'c');
  expect((await refusedCounts(h)).maxConnectionsPerIp).toBe(1);
});

test('flapping: the CONNECT past maxCount accepted in the window gets 5 (3.1.1) and bans the client id; later ones get 5 and 0x8A Banned (MQTT 5) until banTime ends', async () => {
  h = await startGate({ flapping: { maxCount: 3, window: 60_000, banTime: 1500 }, metricsPort: 0, metricsHost: '127.0.0.1' });
  for (let i = 0; i < 3; i++) {
    const c = await conns.connectedRaw(h.tcpPort, 'flappy');
    c.destroy();
    await c.closed;
  }
  const fourth = await conns.raw(h.tcpPort);
  expect((await fourth.connect({ clientId: 'flappy' })).returnCode).toBe(5);
  await within(fourth.closed, 5000, 'the fourth is closed after its refusal');
  const fifth = await conns.raw(h.tcpPort);
  expect((await fifth.connect({ clientId: 'flappy' })).returnCode).toBe(5);
  await within(fifth.closed, 5000, 'closed after the refusal');
  const asV5 = await v5.tcp(h.tcpPort);
  const ack = await asV5.connect({ clientId: 'flappy' });
  expect(ack.reasonCode).toBe(0x8a);
  expect(h.gate.bans()).toEqual([{ kind: 'clientId', value: 'flappy', untilMs: expect.any(Number) }]);
  expect(await refusedCounts(h)).toEqual({ flapping: 1, bannedClientId: 2 });
  await conns.connectedRaw(h.tcpPort, 'someone-else');
  await waitUntil('the ban is over', () => h!.gate.bans().length === 0, 5000, 50);
  await conns.connectedRaw(h.tcpPort, 'flappy');
});

test('flapping counts accepted CONNECTs only: refused ones with the same client id never get it banned', async () => {
  h = await startGate({
    flapping: { maxCount: 3, window: 60_000, banTime: 60_000 },
    authenticate: ({ password }) => password?.toString() === 'right',
  });
  for (let i = 0; i < 10; i++) {
    const c = await conns.raw(h.tcpPort);
    expect((await c.connect({ clientId: 'victim', username: 'u', password: Buffer.from('wrong') })).returnCode).toBe(5);
    await c.closed;
  }
  expect(h.gate.bans()).toEqual([]);
  await conns.connectedRaw(h.tcpPort, 'victim', { username: 'u', password: Buffer.from('right') });
});

test('ban { ip }: live sessions of the address are kicked, new sockets closed at accept; unban admits again', async () => {
  h = await startGate({});
  const live = await conns.connectedRaw(h.tcpPort, 'victim');
  const pending = await conns.raw(h.tcpPort); // no CONNECT yet
  await waitUntil('both accepted', () => h!.gate.stats().connections === 2);
  await h.gate.ban({ ip: '127.0.0.1' }, 60_000);
  await within(live.closed, 5000, 'the live session is kicked');
  await within(pending.closed, 5000, 'the pending connection is closed');
  const next = await conns.raw(h.tcpPort);
  await within(next.closed, 5000, 'a new socket is closed at accept');
  expect(next.packets).toEqual([]);
  expect(h.gate.bans()).toEqual([{ kind: 'ip', value: '127.0.0.1', untilMs: expect.any(Number) }]);
  expect(await h.gate.unban({ ip: '127.0.0.1' })).toBe(true);
  await conns.connectedRaw(h.tcpPort, 'back');
});

test('ban { clientId }: the live session is kicked and its CONNECT refused with 5 / 0x8A; others connect', async () => {
  h = await startGate({});
  const live = await conns.connectedRaw(h.tcpPort, 'bad-device');
  await h.gate.ban({ clientId: 'bad-device' }, 60_000);
  await within(live.closed, 5000, 'kicked');
  const again = await conns.raw(h.tcpPort);
  expect((await again.connect({ clientId: 'bad-device' })).returnCode).toBe(5);
  expect((await (await v5.tcp(h.tcpPort)).connect({ clientId: 'bad-device' })).reasonCode).toBe(0x8a);
  await conns.connectedRaw(h.tcpPort, 'good-device');
});

test('ban { userId }: the bound session is kicked and a Bind of that user fails with code BANNED', async () => {
  h = await startGate({});
  const who: SessionData[] = [];
  h.gate.on('connect', (s) => who.push(s));
  const bind = (sessionId: string, userId: string) => h!.transport.call({ serverId: h!.gate.serverId }, GateFunctions.Bind, [sessionId, userId]);
  const a = await conns.connectedRaw(h.tcpPort, 'a');
  await waitUntil('connected', () => who.length === 1);
  await bind(who[0].sessionId, 'mallory');
  await h.gate.ban({ userId: 'mallory' }, 60_000);
  await within(a.closed, 5000, 'the bound session is kicked');
  await conns.connectedRaw(h.tcpPort, 'b');
  await waitUntil('connected', () => who.length === 2);
  const err = await bind(who[1].sessionId, 'mallory').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RpcError);
  expect((err as RpcError).code).toBe('BANNED');
  await expect(bind(who[1].sessionId, 'alice')).resolves.toBeDefined();
});

test('ban: bad arguments and a full list are errors', async () => {
  h = await startGate({ maxBans: 1 });
  await expect(h.gate.ban({ ip: '10.0.0.1' }, 0)).rejects.toThrow(RangeError);
  await expect(h.gate.ban({} as { ip: string }, 1000)).rejects.toThrow(TypeError);
  await h.gate.ban({ ip: '10.0.0.1' }, 1000);
  await expect(h.gate.ban({ ip: '10.0.0.2' }, 1000)).rejects.toThrow(/maxBans 1/);
});

/** A raw TCP socket to the WebSocket port. */
function rawSocket(port: number): Promise<{ socket: Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const opened = Date.now();
    const socket = netConnect(port, '127.0.0.1', () =>
      resolve({ socket, closed: new Promise((done) => socket.on('close', () => done(Date.now() - opened))) }),
    );
    socket.once('error', reject);
    socket.on('error', () => undefined);
  });
}

test('connectTimeout covers the WebSocket upgrade: HTTP headers trickled a byte at a time are cut at connectTimeout', async () => {
  h = await startGate({ connectTimeout: 800 });
  const { socket, closed } = await rawSocket(h.wsPort);
  const head = 'GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Padding: ' + 'x'.repeat(200);
  let i = 0;
  const drip = setInterval(() => {
    if (i < head.length && !socket.destroyed) socket.write(head[i++]);
  }, 50);
  try {
    const after = await within(closed, 10_000, 'the trickling socket is closed');
    expect(after).toBeGreaterThanOrEqual(700);
    expect(after).toBeLessThan(5000); // not Node's 60 s headersTimeout
    expect(i).toBeLessThan(head.length);
  } finally {
    clearInterval(drip);
  }
});

test('connectTimeout counts from the TCP accept, not from the upgrade: a slow upgrade leaves less time for CONNECT', async () => {
  h = await startGate({ connectTimeout: 1500 });
  const { socket, closed } = await rawSocket(h.wsPort);
  await new Promise((r) => setTimeout(r, 1000)); // idle TCP before the upgrade request
  socket.write(
    'GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n',
  );
  const upgraded = new Promise<string>((resolve) => socket.once('data', (d) => resolve(d.toString())));
  expect(await within(upgraded, 5000, 'the upgrade answer')).toMatch(/^HTTP\/1.1 101/);
  const after = await within(closed, 10_000, 'closed without CONNECT');
  expect(after).toBeGreaterThanOrEqual(1400);
  expect(after).toBeLessThan(1500 + 1400); // not connectTimeout again from the upgrade
});

test('maxKeepalive is 1200 s by default: 3.1.1 over it gets return code 2, MQTT 5 gets Server Keep Alive 1200', async () => {
  h = await startGate({});
  const raw = await conns.raw(h.tcpPort);
  expect((await raw.connect({ clientId: 'long', keepalive: 1201 })).returnCode).toBe(2);
  await conns.connectedRaw(h.tcpPort, 'at-limit', { keepalive: 1200 });
  const ack = await (await v5.tcp(h.tcpPort)).connect({ clientId: 'long5', keepalive: 65535 });
  expect(ack.reasonCode).toBe(0);
  expect(ack.properties?.serverKeepAlive).toBe(1200);
});

test('ban { userId } at JWT CONNECT: the token is valid, the CONNECT gets 0x8A Banned (3.1.1: 5)', async () => {
  const secret = 'a-test-secret-of-at-least-32-bytes!!';
  h = await startGate({ jwt: { secret } });
  const token = (sub: string) =>
    new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
  await h.gate.ban({ userId: 'banned-user' }, 60_000);
  const raw = await conns.raw(h.tcpPort);
  expect((await raw.connect({ clientId: 'j3', username: 'u', password: Buffer.from(await token('banned-user')) })).returnCode).toBe(5);
  const ack = await (await v5.tcp(h.tcpPort)).connect({ clientId: 'j5', username: 'u', password: Buffer.from(await token('banned-user')) });
  expect(ack.reasonCode).toBe(0x8a);
  await conns.connectedRaw(h.tcpPort, 'j-ok', { username: 'u', password: Buffer.from(await token('fine-user')) });
  expect(h.gate.counts().bound).toBe(1);
});

test('wss: the upgrade deadline is cleared once upgraded (a connected wss client outlives connectTimeout)', async () => {
  const pki = makeTestPki();
  h = await startGate({ connectTimeout: 400, wss: { port: 0, host: '127.0.0.1', key: pki.serverKey, cert: pki.serverCert } });
  const c = await conns.mqtt(`wss://127.0.0.1:${h.gate.addresses().wss!.port}/mqtt`, {
    ca: pki.read(pki.caCert),
    servername: 'localhost',
    clientId: 'wss-stays',
  });
  expect(await staysOpen(closeOf(c), 1500)).toBe(true);
  expect(c.connected).toBe(true);
});

test('WebSocket sockets not yet upgraded count toward maxConnectionsPerIp: one more is closed at once, an upgrade moves the count over', async () => {
  h = await startGate({ maxConnectionsPerIp: 3, connectRate: false, metricsPort: 0, metricsHost: '127.0.0.1' });
  const silent = [await rawSocket(h.wsPort), await rawSocket(h.wsPort)]; // accepted, never upgraded
  const ws = await conns.connectedWs(`ws://127.0.0.1:${h.wsPort}/mqtt`, 'upgraded'); // the third
  const extra = await rawSocket(h.wsPort);
  await within(extra.closed, 5000, 'the fourth socket from the address is closed before any upgrade');
  expect((await refusedCounts(h)).maxConnectionsPerIp).toBe(1);
  silent[0].socket.destroy();
  await silent[0].closed;
  // A slot is free again: a new socket from the address is held (until connectTimeout), not refused.
  // (The gate sees the close a moment after the client does: try until a socket is held.)
  let next: { socket: Socket; closed: Promise<number> } | undefined;
  await waitUntil('a new socket from the address is held again', async () => {
    const s = await rawSocket(h!.wsPort);
    if (await staysOpen(s.closed, 300)) next = s;
    return next !== undefined;
  });
  ws.send({ cmd: 'pingreq' });
  await within(ws.next('pingresp'), 5000, 'the upgraded connection still answers'); // not disturbed
  next!.socket.destroy();
  silent[1].socket.destroy();
});

test('mqtts: sockets still before their TLS handshake count toward maxConnectionsPerIp, and a handshake never made is cut at connectTimeout', async () => {
  const pki = makeTestPki();
  h = await startGate({
    maxConnectionsPerIp: 2,
    connectRate: false,
    connectTimeout: 2500,
    mqtts: { port: 0, host: '127.0.0.1', key: pki.serverKey, cert: pki.serverCert },
  });
  const port = h.gate.addresses().mqtts!.port;
  const silent = [await rawSocket(port), await rawSocket(port)]; // TCP only, no ClientHello
  const extra = await rawSocket(port);
  expect(await within(extra.closed, 5000, 'the third socket from the address is closed')).toBeLessThan(1500); // at once, not at connectTimeout
  const cut = await within(silent[0].closed, 10_000, 'a socket that never starts its handshake is closed');
  expect(cut).toBeGreaterThan(2000); // held until connectTimeout (2500 ms) ...
  expect(cut).toBeLessThan(8000); // ... not Node's 120 s handshakeTimeout
  await silent[1].closed;
  const c = await conns.mqtt(`mqtts://127.0.0.1:${port}`, { ca: pki.read(pki.caCert), servername: 'localhost', clientId: 'tls-after' });
  expect(c.connected).toBe(true);
});
