/**
 * WebSocket pipeliners against a module whose handler costs CPU (2 ms of busy work a request,
 * run on the gate's event loop as an in-process module's is): each turn of the event loop
 * parses and dispatches a bounded share of their backlog (protocol/input-turns.ts: a per-turn
 * clock, a slice per connection, a bound on what a turn resumes), so the gate logs no
 * `event-loop-stall` of its own making (its watch, ops/event-loop-stall.ts, gives the CPU used
 * during a stall) and another client's requests are all answered, in order. With a
 * per-process count alone (1024 PUBLISHes a turn) one turn dispatched 1024 of them: a 2 s
 * stall. Counted per turn with a setImmediate ticker (one run per event-loop iteration).
 */
import { performance } from 'node:perf_hooks';
import * as mqttPacket from 'mqtt-packet';
import { InProcessTransport, MemoryUserIndex } from '@mqgate/rpc';
import { Gate } from '@mqgate/gate';
import { Connections } from './helpers/connections';
import { waitUntil } from './helpers/waiters';
import { PUBLISHES_PER_SERVE, PUBLISHES_PER_TURN } from '../src/protocol/input-turns';

const BUSY_MS = 2;
const ATTACKERS = 4;
const EACH = 300;
const VICTIM_REQUESTS = 5;

const transport = new InProcessTransport();
const warnings: Array<{ kind?: string; stalledMs?: number; cpuMs?: number }> = [];
const noop = (): void => undefined;
let gate: Gate;
let wsPort = 0;
let tcpPort = 0;
const conns = new Connections();
let calls = 0;

beforeAll(async () => {
  gate = new Gate({ tcp: { port: 0, host: '127.0.0.1' }, websocket: { port: 0, host: '127.0.0.1' }, messageRate: false, byteRate: false });
  await transport.serve({ serverId: 'busy@test', moduleType: 'busy' }, async (_fn, args) => {
    calls++;
    const end = performance.now() + BUSY_MS;
    while (performance.now() < end); // CPU work on the event loop, as a costly in-process handler does
    return args[1];
  });
  const logger = { debug: noop, info: noop, error: noop, warn: (fields: object) => void warnings.push(fields) };
  await gate.start({ transport, logger, userIndex: new MemoryUserIndex() });
  const a = gate.addresses();
  wsPort = a.websocket?.port ?? 0;
  tcpPort = a.tcp?.port ?? 0;
});
afterAll(async () => {
  conns.closeAll();
  await gate.stop();
  await transport.close();
});

/** `n` QoS 1 requests `busy/HD_work/<i>` in one Buffer (one WebSocket frame). */
function requests(n: number, tag: string): Buffer {
  const body = Buffer.from('{"n":1}');
  return Buffer.concat(
    Array.from({ length: n }, (_, i) =>
      mqttPacket.generate({ cmd: 'publish', topic: `busy/HD_work/${tag}-${i}`, payload: body, qos: 1, messageId: i + 1, retain: false, dup: false }),
    ),
  );
}

test(`${ATTACKERS} WebSocket clients pipelining ${EACH} costly requests each: a bounded share dispatched per event-loop turn, no event-loop stall of the gate's own logged, another client answered in order`, async () => {
  const attackers = await Promise.all(Array.from({ length: ATTACKERS }, () => conns.ws(`ws://127.0.0.1:${wsPort}/mqtt`)));
  await Promise.all(attackers.map((c, i) => c.connect({ clientId: `pipeliner-${i}` })));
  const victim = await conns.connectedRaw(tcpPort, 'victim');
  let most = 0;
  let seen = 0;
  let ticking = true;
  const tick = (): void => {
    most = Math.max(most, calls - seen);
    seen = calls;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  attackers.forEach((c, i) => c.sendBytes(requests(EACH, `a${i}`)));
  await waitUntil('the attack under way', () => calls > 0, 10_000);
  const answered: string[] = [];
  for (let i = 0; i < VICTIM_REQUESTS; i++) {
    const topic = `busy/HD_work/victim-${i}`;
    victim.send({ cmd: 'publish', topic, payload: Buffer.from('{"v":1}'), qos: 0, retain: false, dup: false });
    answered.push(((await victim.next('publish')) as mqttPacket.IPublishPacket).topic);
  }
  await waitUntil('every request dispatched', () => calls === ATTACKERS * EACH + VICTIM_REQUESTS, 60_000);
  ticking = false;
  for (const c of attackers) await waitUntil('the last reply', () => c.packets.filter((p) => p.cmd === 'publish').length === EACH, 10_000);

  expect(answered).toEqual(Array.from({ length: VICTIM_REQUESTS }, (_, i) => `busy/HD_work/victim-${i}`));
  expect(most).toBeGreaterThan(0);
  // The connections a turn resumes parse at most PUBLISHES_PER_SERVE (plus one parse batch,
  // maxInflight 20); the turn's clock ends the rest at the next batch.
  expect(most).toBeLessThan(2 * PUBLISHES_PER_SERVE);
  expect(2 * PUBLISHES_PER_SERVE).toBeLessThan(PUBLISHES_PER_TURN);
  // No stall of the gate's own making (on CPU for most of it); one where the host did not
  // run this process (a loaded machine) has little CPU in it and says nothing of the gate.
  expect(warnings.filter((w) => w.kind === 'event-loop-stall' && (w.cpuMs ?? 0) > (w.stalledMs ?? 0) / 2)).toEqual([]);
});
