/**
 * A client's pipelined backlog is read a bounded number of packets per turn of the event
 * loop, across connections (protocol/input-turns.ts): WebSocket clients that send thousands
 * of QoS 1 requests in a few frames have them parsed and dispatched at most
 * PUBLISHES_PER_TURN per turn (the rest waits, its wire paused), never all in one turn, and
 * every request is still answered. Real WebSocket sockets, raw mqtt-packet frames; the turn
 * is counted by a setImmediate ticker (one run per turn), not timed.
 */
import * as mqttPacket from 'mqtt-packet';
import { Connections } from './helpers/connections';
import { startGate, type Harness } from './helpers/harness';
import { waitUntil } from './helpers/waiters';
import { PUBLISHES_PER_TURN } from '../src/protocol/input-turns';

let h: Harness;
const conns = new Connections();
let calls = 0;

beforeAll(async () => {
  h = await startGate({ messageRate: false, byteRate: false });
  await h.serve('svc', async (_fn, args) => {
    calls++;
    return args[1];
  });
});
afterEach(() => conns.closeAll());
afterAll(() => h.stop());

/** `n` QoS 1 requests `svc/HD_echo/<i>` in one Buffer (sent as one WebSocket frame). */
function requests(n: number, from: number): Buffer {
  const body = Buffer.from('{"n":1}');
  return Buffer.concat(
    Array.from({ length: n }, (_, i) =>
      mqttPacket.generate({
        cmd: 'publish',
        topic: `svc/HD_echo/${from + i}`,
        payload: body,
        qos: 1,
        messageId: (from + i) % 65535 || 1,
        retain: false,
        dup: false,
      }),
    ),
  );
}

test('two WebSocket clients pipelining 4 000 QoS 1 requests each: at most a turn allowance of them dispatched per event-loop turn, all answered', async () => {
  const clients = await Promise.all([0, 1].map(() => conns.ws(`ws://127.0.0.1:${h.wsPort}/mqtt`)));
  await Promise.all(clients.map((c, i) => c.connect({ clientId: `backlog-${i}` })));
  let most = 0;
  let seen = 0;
  let ticking = true;
  const tick = (): void => {
    most = Math.max(most, calls - seen);
    seen = calls;
    if (ticking) setImmediate(tick);
  };
  calls = 0;
  setImmediate(tick);
  for (const c of clients) for (let f = 0; f < 4; f++) c.sendBytes(requests(1000, f * 1000 + 1));
  await waitUntil('8 000 requests dispatched', () => calls === 8000, 20_000);
  ticking = false;
  for (const c of clients) await waitUntil('the last reply', () => c.packets.filter((p) => p.cmd === 'publish').length === 4000, 10_000);
  expect(most).toBeGreaterThan(0);
  expect(most).toBeLessThanOrEqual(2 * PUBLISHES_PER_TURN);
});
