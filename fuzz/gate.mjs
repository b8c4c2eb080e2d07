// @ts-check
// The gate under fuzz, as its own process: the built Gate with the demo's modules (user,
// chat, echo) in process, sessions in MemoryStorage, TCP and WebSocket on OS-chosen loopback
// ports. The demo's own defaults except connectTimeout (short, so that a case the gate
// waits on ends soon). Prints `FUZZ_GATE {"tcp":port,"ws":port}` once listening.
//
//   node fuzz/gate.mjs [--connect-timeout MS] [--fault stall|crash] [--fault-after MS]
//
// --fault makes the process misbehave on purpose, to check the fuzzer's own detection:
// `stall` blocks its event loop for good after --fault-after ms, `crash` exits 70.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const { createApp } = require('../packages/client/dist/index.js');
const { Gate } = require('../packages/gate/dist/index.js');
const { MemoryStorage } = require('../packages/storage/dist/index.js');
const { userModule, chatModule, echoModule } = require('../packages/demo/dist/index.js');
const pino = require('pino');

const { values } = parseArgs({
  options: {
    'connect-timeout': { type: 'string', default: '500' },
    fault: { type: 'string' },
    'fault-after': { type: 'string', default: '1500' },
    'log-level': { type: 'string', default: 'error' },
  },
});

const logger = pino({ level: values['log-level'] }, pino.destination(2));
const storage = new MemoryStorage({ ttl: 60_000 });
const app = createApp({ logger });
app.module(userModule).module(chatModule).module(echoModule);
const gate = new Gate({
  tcp: { port: 0, host: '127.0.0.1' },
  websocket: { port: 0, host: '127.0.0.1' },
  connectTimeout: Number(values['connect-timeout']),
  storage,
  // A bulk loopback load (the fuzzer reconnects from 127.0.0.1 all the time, reusing client
  // ids): the per-address limits and flapping detection are off here, not in the defaults.
  maxConnectionsPerIp: 0,
  connectRate: false,
  flapping: false,
});
app.use(gate);
let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  app.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
await app.start();
const { tcp, websocket } = gate.addresses();
process.stdout.write(`FUZZ_GATE ${JSON.stringify({ tcp: tcp.port, ws: websocket.port, pid: process.pid })}\n`);

if (values.fault) {
  setTimeout(() => {
    if (values.fault === 'crash') process.exit(70);
    if (values.fault === 'stall') for (;;);
  }, Number(values['fault-after']));
}
