// A gate in its own process, for the output-budget tests: the built Gate on an
// OS-chosen loopback TCP port with an in-process transport, `maxBufferedBytesTotal` from
// argv[2] (bytes). Prints `BUDGET_GATE {"tcp":port}` once listening, then answers one JSON
// command per stdin line with one JSON line on stdout:
//   {"cmd":"storm","count":n,"size":bytes}  n broadcasts of `size` bytes on chat/storm, one
//                                          per event-loop turn; answers the RSS before and
//                                          its peak during the storm, and the gate's stats
//   {"cmd":"marker"}                        one broadcast on chat/marker ("end")
//   {"cmd":"report"}                        stats, close reasons, warn kinds
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

const require = createRequire(import.meta.url);
const { Gate } = require('../../dist/index.js');
const { InProcessTransport, MemoryUserIndex } = require('../../../rpc/dist/index.js');

const warns = {};
const noop = () => undefined;
const logger = { trace: noop, debug: noop, info: noop, error: noop, fatal: noop, warn: (o) => void (warns[o.kind] = (warns[o.kind] ?? 0) + 1) };
logger.child = () => logger;
const gate = new Gate({
  tcp: { port: 0, host: '127.0.0.1' },
  websocket: false,
  maxBufferedBytesTotal: Number(process.argv[2]),
  // 500 clients from 127.0.0.1 at once: the per-address limits at the door are off here.
  maxConnectionsPerIp: 0,
  connectRate: false,
});
const closes = {};
/** Unsent bytes of each slow-consumer close, in the order the gate closed them. */
const shed = [];
gate.on('disconnect', (_s, reason) => {
  const key = reason.replace(/\d+/g, 'N');
  closes[key] = (closes[key] ?? 0) + 1;
  const m = /^slow consumer: (\d+) bytes unsent/.exec(reason);
  if (m) shed.push(Number(m[1]));
});
await gate.start({ transport: new InProcessTransport(), logger, userIndex: new MemoryUserIndex() });
process.stdout.write(`BUDGET_GATE ${JSON.stringify({ tcp: gate.addresses().tcp.port })}\n`);

const turn = () => new Promise((resolve) => setImmediate(resolve));
const report = () => ({ stats: gate.stats(), closes, warns, shed });

for await (const line of createInterface({ input: process.stdin })) {
  const c = JSON.parse(line);
  if (c.cmd === 'storm') {
    const body = Buffer.alloc(c.size, 0x61);
    const before = process.memoryUsage.rss();
    let peak = before;
    let delivered = 0;
    for (let i = 0; i < c.count; i++) {
      delivered += gate.broadcast('chat/storm', body);
      await turn();
      const rss = process.memoryUsage.rss();
      if (rss > peak) peak = rss;
    }
    process.stdout.write(`${JSON.stringify({ before, peak, delivered, ...report() })}\n`);
  } else if (c.cmd === 'marker') {
    process.stdout.write(`${JSON.stringify({ delivered: gate.broadcast('chat/marker', 'end') })}\n`);
  } else if (c.cmd === 'report') {
    process.stdout.write(`${JSON.stringify(report())}\n`);
  }
}
await gate.stop();
