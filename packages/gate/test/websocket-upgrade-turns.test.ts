/**
 * WebSocket upgrades are completed a bounded number per turn of the event loop
 * (wire/upgrade-turns.ts): 100 sockets whose upgrade requests all arrive at once are upgraded
 * at most 2 × UPGRADES_PER_TURN per turn (one turn in the I/O phase, one in the check phase),
 * never all in one, and every one is upgraded and CONNECTs. Real sockets, raw HTTP upgrade
 * requests; the turn is counted by a setImmediate ticker (one run per turn), not timed.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import * as mqttPacket from 'mqtt-packet';
import { startGate, type Harness } from './helpers/harness';
import { waitUntil } from './helpers/waiters';
import { UPGRADES_PER_TURN } from '../src/wire/upgrade-turns';

let h: Harness;
const sockets: Socket[] = [];

beforeAll(async () => {
  h = await startGate({ maxConnectionsPerIp: 0, connectRate: false, flapping: false });
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await h.stop();
});

const request = (i: number): string =>
  'GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  `Sec-WebSocket-Key: ${Buffer.from(`upgrade-turns-${String(i).padStart(2, '0')}`).toString('base64')}\r\n` +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n';

test('100 upgrade requests arriving at once: at most 2 × UPGRADES_PER_TURN upgraded per event-loop turn, all upgraded', async () => {
  const n = 100;
  for (let i = 0; i < n; i++) sockets.push(connect({ port: h.wsPort, host: '127.0.0.1' }));
  const last = connect({ port: h.wsPort, host: '127.0.0.1' });
  await Promise.all([...sockets, last].map((s) => once(s, 'connect')));
  const replies = sockets.map((s) => {
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    return () => got;
  });
  // The gate accepts in order: once the socket connected last is upgraded, the 100 are accepted
  // and waiting for their requests, which then arrive together.
  last.write(request(n));
  await once(last, 'data');
  let most = 0;
  let seen = h.gate.stats().connections;
  let ticking = true;
  const tick = (): void => {
    const now = h.gate.stats().connections;
    most = Math.max(most, now - seen);
    seen = now;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  sockets.forEach((s, i) => s.write(request(i)));
  sockets.push(last);
  await waitUntil('100 upgraded', () => replies.every((r) => r().startsWith('HTTP/1.1 101 ')), 10_000);
  ticking = false;
  expect(most).toBeGreaterThan(0);
  expect(most).toBeLessThanOrEqual(2 * UPGRADES_PER_TURN);
  // Each upgraded socket speaks MQTT: a CONNECT in a binary frame (masked, as from a client) gets a CONNACK.
  const connect0 = mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: 'upgrade-turns-0',
    keepalive: 60,
  });
  const mask = Buffer.from([1, 2, 3, 4]);
  const frame = Buffer.concat([Buffer.from([0x82, 0x80 | connect0.length]), mask, Buffer.from(connect0.map((b, i) => b ^ mask[i % 4]))]);
  const before = replies[0]().length;
  sockets[0].write(frame);
  await waitUntil('a CONNACK frame', () => replies[0]().length >= before + 6, 5_000);
  expect(replies[0]().charCodeAt(before)).toBe(0x82);
  expect(replies[0]().charCodeAt(before + 2)).toBe(0x20); // CONNACK
});
