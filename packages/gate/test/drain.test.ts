/**
 * drain(): the listeners close at once, in-flight requests finish, then the sessions are
 * kicked with the stop reason in batches spread over drainPeriod (2,000 raw TCP clients),
 * and a stop() during a drain kicks the rest at once.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import { KICK_TOPIC } from '@mqgate/gate';
import { closeInBatches } from '../src/drain';
import { startGate, type Harness } from './helpers/harness';

/** Many clients from one address, quickly: the per-address limits at the door off (they would refuse it by design). */
const BULK_LOOPBACK = { maxConnectionsPerIp: 0, connectRate: false } as const;
import { within } from './helpers/waiters';

interface Client {
  socket: Socket;
  /** ms (Date.now()) the kick arrived, and its body. */
  kickedAt?: number;
  kick?: string;
  closed: Promise<number>;
}

/** A raw client: CONNECT, then records the `gate/kick` push and the close. */
async function client(port: number, id: number): Promise<Client> {
  const socket = connect(port, '127.0.0.1');
  const parser = mqttPacket.parser();
  const c: Client = { socket, closed: once(socket, 'close').then(() => Date.now()) };
  const connack = new Promise<void>((resolve) => {
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') resolve();
      if (p.cmd === 'publish' && p.topic === KICK_TOPIC) {
        c.kickedAt = Date.now();
        c.kick = (p.payload as Buffer).toString();
      }
    });
  });
  socket.on('data', (chunk) => parser.parse(chunk));
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `drain-${id}`, clean: true, keepalive: 0 }));
  await connack;
  return c;
}

async function clients(port: number, n: number): Promise<Client[]> {
  const out: Client[] = [];
  for (let i = 0; i < n; i += 250) out.push(...(await Promise.all(Array.from({ length: Math.min(250, n - i) }, (_, j) => client(port, i + j)))));
  return out;
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

test('2,000 clients drained over drainPeriod in batches, every one kicked with the reason', async () => {
  const period = 1500;
  // A bulk loopback load (thousands of clients from 127.0.0.1): the per-address limits at the door are off here, not in the defaults.
  h = await startGate({ drainPeriod: period, websocket: false, ...BULK_LOOPBACK });
  let finishSlow!: () => void;
  let reached!: () => void;
  const atModule = new Promise<void>((r) => (reached = r));
  await h.serve('svc', () => {
    reached();
    return new Promise<string>((resolve) => (finishSlow = () => resolve('done')));
  });
  const all = await clients(h.tcpPort, 2000);
  expect(h.gate.counts().total).toBe(2000);
  // one request in flight: the drain waits for it before kicking anyone
  const replied = new Promise<string>((resolve) => {
    const p = mqttPacket.parser();
    p.on('packet', (pkt) => pkt.cmd === 'publish' && pkt.topic === 'svc/HD_slow/1' && resolve((pkt.payload as Buffer).toString()));
    all[0].socket.on('data', (chunk) => p.parse(chunk));
  });
  all[0].socket.write(mqttPacket.generate({ cmd: 'publish', topic: 'svc/HD_slow/1', payload: Buffer.from('{}'), qos: 0, retain: false, dup: false }));
  await within(atModule, 3000, 'request reaches the module');

  const drained = h.gate.drain();
  expect(h.gate.readiness().accepting).toBe(false);
  const refused = connect(h.tcpPort, '127.0.0.1');
  await expect(once(refused, 'connect')).rejects.toThrow(/ECONNREFUSED/);
  await new Promise((r) => setTimeout(r, 100));
  expect(all.some((c) => c.kick)).toBe(false); // nobody kicked while a request is in flight
  const t0 = Date.now();
  finishSlow();
  expect(JSON.parse(await within(replied, 3000, 'reply of the in-flight request')).Result).toBe('done');
  await within(drained, period + 10_000, 'drain');
  const closedAt = await Promise.all(all.map((c) => c.closed));

  expect(all.filter((c) => c.kick !== '{"reason":"server shutting down"}')).toHaveLength(0);
  const at = all.map((c) => c.kickedAt! - t0).sort((a, b) => a - b);
  expect(at[0]).toBeLessThan(300);
  expect(at[at.length - 1]).toBeGreaterThanOrEqual(period * 0.9);
  expect(at[at.length - 1]).toBeLessThan(period + 1500);
  // evenly spread: each quarter of the period got between 15% and 35% of the kicks
  for (let q = 0; q < 4; q++) {
    const n = at.filter((t) => t >= (q * period) / 4 && (q === 3 || t < ((q + 1) * period) / 4)).length;
    expect(n).toBeGreaterThan(300);
    expect(n).toBeLessThan(700);
  }
  expect(Math.max(...closedAt) - t0).toBeLessThan(period + 3000);
  h = undefined;
}, 30_000);

test('a stop() during a drain kicks the rest at once', async () => {
  h = await startGate({ drainPeriod: 20_000, websocket: false, ...BULK_LOOPBACK });
  const all = await clients(h.tcpPort, 200);
  const drained = h.gate.drain();
  await new Promise((r) => setTimeout(r, 300));
  const before = all.filter((c) => c.kick).length;
  expect(before).toBeGreaterThan(0);
  expect(before).toBeLessThan(50);
  await within(h.gate.stop(), 2000, 'stop during the drain');
  await within(drained, 100, 'drain settled with the stop');
  await Promise.all(all.map((c) => c.closed));
  expect(all.filter((c) => c.kick === '{"reason":"server shutting down"}')).toHaveLength(200);
  h = undefined;
});

test('closeInBatches: batches spread over the period, 0 closes all at once', async () => {
  const never = new Promise<void>(() => undefined);
  const closed: number[] = [];
  await closeInBatches([1, 2, 3], 0, (x) => closed.push(x), never);
  expect(closed).toEqual([1, 2, 3]);
  const times: number[] = [];
  const t0 = Date.now();
  await closeInBatches(
    Array.from({ length: 10 }, (_, i) => i),
    200,
    () => times.push(Date.now() - t0),
    never,
  );
  expect(times).toHaveLength(10);
  expect(times[0]).toBeLessThan(20);
  expect(times[9]).toBeGreaterThanOrEqual(190);
  await closeInBatches([], 1000, () => closed.push(99), never);
  expect(closed).toEqual([1, 2, 3]);
});
