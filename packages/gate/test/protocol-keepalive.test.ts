/**
 * Keepalive (reference/mqtt-layer.md §6.3 item 3; MQTT-3.1.2-24): a client silent for
 * 1.5 × keepalive is closed; any packet keeps it alive; keepalive 0 falls back to maxIdle.
 * Timing bounds: lower bounds only, upper bounds of several seconds.
 */
import { Connections } from './helpers/connections';
import { startGate, request, mqttOpts, VERSIONS, type RawClient, type Harness } from './helpers/harness';
import { closeOf, nextSession, staysOpen, within } from './helpers/waiters';

let h: Harness;
const conns = new Connections();
const timers: NodeJS.Timeout[] = [];
/** Disconnect reasons by session id. */
const reasons = new Map<string, string>();

const openRaw = () => conns.raw(h.tcpPort);

beforeAll(async () => {
  h = await startGate({ maxIdle: 800 });
  h.gate.on('disconnect', (s, reason) => reasons.set(s.sessionId, reason));
  await h.serve('svc', async (fn, args) => (fn === 'HD_echo' ? args[1] : null));
});

afterEach(async () => {
  for (const t of timers.splice(0)) clearInterval(t);
  await conns.closeAll();
});

afterAll(() => h.stop());

test('keepalive 1, silent after CONNACK (levels 3 and 4 side by side): closed after at least 1.5 s', async () => {
  const silent: Array<{ v: number; raw: RawClient; id: string; t0: number }> = [];
  for (const v of VERSIONS) {
    const raw = await openRaw();
    const session = nextSession(h);
    const ack = await raw.connect({ clientId: `silent-${v}`, keepalive: 1, protocolVersion: v, protocolId: v === 3 ? 'MQIsdp' : 'MQTT' });
    const t0 = Date.now();
    expect(ack.returnCode).toBe(0);
    silent.push({ v, raw, id: (await session).sessionId, t0 });
  }
  await Promise.all(
    silent.map(async ({ v, raw, id, t0 }) => {
      await within(raw.closed, 5000, `keepalive close (level ${v})`);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
      expect(reasons.get(id)).toMatch(/keepalive/);
    }),
  );
});

test('keepalive 1 with a PINGREQ every 500 ms stays open past 2.5 s and gets PINGRESPs', async () => {
  const raw = await openRaw();
  expect((await raw.connect({ clientId: 'pinger', keepalive: 1 })).returnCode).toBe(0);
  let pings = 0;
  timers.push(
    setInterval(() => {
      pings++;
      raw.send({ cmd: 'pingreq' });
    }, 500),
  );
  // Also a client that keeps alive with PUBLISHes only (any packet counts), and MQTT.js
  // at every level with keepalive 1 (it pings by itself), all in the same 2.6 s.
  const publisher = await openRaw();
  expect((await publisher.connect({ clientId: 'publisher', keepalive: 1 })).returnCode).toBe(0);
  timers.push(
    setInterval(() => {
      publisher.send({ cmd: 'publish', topic: 'svc/HD_echo', payload: Buffer.from('{}'), qos: 0, dup: false, retain: false });
    }, 500),
  );
  const mqttjs = await Promise.all(VERSIONS.map((v) => conns.mqtt(h.tcpUrl, { ...mqttOpts(v), clientId: `mqttjs-ka-${v}`, keepalive: 1 })));
  const mqttjsClosed = mqttjs.map(closeOf);

  const open = await Promise.all([staysOpen(raw.closed, 2600), staysOpen(publisher.closed, 2600), ...mqttjsClosed.map((p) => staysOpen(p, 2600))]);
  expect(open).toEqual(Array(2 + VERSIONS.length).fill(true));
  const pingresps = raw.packets.filter((p) => p.cmd === 'pingresp').length;
  expect(pings).toBeGreaterThanOrEqual(4);
  expect(pingresps).toBeGreaterThanOrEqual(pings - 1);
  for (const c of mqttjs) {
    const reply = await within(request(c, 'svc/HD_echo/after', '{"alive":true}'), 2000, 'reply after 2.6 s');
    expect(reply.Result).toEqual({ alive: true });
  }
});

test('keepalive 0 falls back to maxIdle (800 ms): a silent client is closed after about 800 ms', async () => {
  const raw = await openRaw();
  const session = nextSession(h);
  expect((await raw.connect({ clientId: 'ka0', keepalive: 0 })).returnCode).toBe(0);
  const t0 = Date.now();
  const { sessionId: id } = await session;
  await within(raw.closed, 5000, 'maxIdle close');
  expect(Date.now() - t0).toBeGreaterThanOrEqual(750);
  expect(reasons.get(id)).toMatch(/keepalive|idle/);
});

test('keepalive 0 with traffic every 300 ms stays open past maxIdle', async () => {
  const raw = await openRaw();
  expect((await raw.connect({ clientId: 'ka0-busy', keepalive: 0 })).returnCode).toBe(0);
  timers.push(setInterval(() => raw.send({ cmd: 'pingreq' }), 300));
  expect(await staysOpen(raw.closed, 1500)).toBe(true);
  expect(raw.packets.filter((p) => p.cmd === 'pingresp').length).toBeGreaterThanOrEqual(3);
});
