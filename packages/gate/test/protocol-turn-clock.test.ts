/**
 * The input turns' CPU clock (protocol/input-turns.ts) is not read in a short turn: one client
 * sending one request at a time (every turn holds one PUBLISH) costs the gate no getrusage
 * system call per request. Before, each turn's first PUBLISH read the process's CPU: one
 * `process.cpuUsage()` per request, 3.75 % of the gate's CPU at tcp 1 × 1 (perf). Counted with
 * a spy that calls through; the event-loop stall watch reads the CPU too, on its own timer.
 */
import { InProcessTransport, MemoryUserIndex } from '@mqgate/rpc';
import { Gate } from '@mqgate/gate';
import { Connections } from './helpers/connections';
import { CPU_SAMPLE_AFTER_MS } from '../src/protocol/input-turns';

const REQUESTS = 400;
const transport = new InProcessTransport();
const conns = new Connections();
let gate: Gate;
const noop = (): void => undefined;
const logger = { debug: noop, info: noop, warn: noop, error: noop };

beforeAll(async () => {
  gate = new Gate({ tcp: { port: 0, host: '127.0.0.1' }, websocket: false, messageRate: false, byteRate: false });
  await transport.serve({ serverId: 'echo@turn-clock', moduleType: 'echo' }, async (_fn, args) => args[1]);
  await gate.start({ transport, logger, userIndex: new MemoryUserIndex() });
});
afterAll(async () => {
  await conns.closeAll();
  await gate.stop();
  await transport.close();
});

test(`${REQUESTS} requests one at a time read the process CPU far fewer times than once each (first read ${CPU_SAMPLE_AFTER_MS} ms into a turn)`, async () => {
  const client = await conns.mqtt(`mqtt://127.0.0.1:${gate.addresses().tcp!.port}`, { clientId: 'turn-clock' });
  const replies: string[] = [];
  let next: () => void = () => undefined;
  client.on('message', (_topic, payload) => {
    replies.push(payload.toString());
    next();
  });
  const spy = jest.spyOn(process, 'cpuUsage');
  try {
    for (let i = 0; i < REQUESTS; i++) {
      const answered = new Promise<void>((r) => (next = r));
      client.publish(`echo/HD_echo/${i}`, `{"i":${i}}`, { qos: 0 });
      await answered;
    }
    expect(replies).toHaveLength(REQUESTS);
    expect(JSON.parse(replies[REQUESTS - 1]).Result).toEqual({ i: REQUESTS - 1 });
    // A turn that lasts over 1 ms (GC, a loaded host) reads it once; most turns here take µs.
    expect(spy.mock.calls.length).toBeLessThan(REQUESTS / 4);
  } finally {
    spy.mockRestore();
  }
});
