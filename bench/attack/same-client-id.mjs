// 1,000 CONNECTs with one client id at once against a gate with its default flapping limit
// (15 per 60 s) and an authenticate hook that answers asynchronously (like one that asks a
// user store): how many get CONNACK 0, how many are refused, and whether the id is banned.
//   node bench/attack/same-client-id.mjs [--connects 1000] [--auth-ms 20]
import { connect as netConnect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRequire } from 'node:module';
import mqtt from 'mqtt-packet';

const require = createRequire(import.meta.url);
const { Gate } = require('../../packages/gate/dist/index.js');
const { InProcessTransport, MemoryUserIndex, silentLogger } = require('../../packages/rpc/dist/index.js');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('connects', 1000);
const AUTH_MS = arg('auth-ms', 20);

const transport = new InProcessTransport();
const gate = new Gate({
  tcp: { port: 0, host: '127.0.0.1' },
  maxConnectionsPerIp: 0,
  connectRate: false,
  authenticate: async () => {
    await sleep(AUTH_MS);
    return true;
  },
});
await gate.start({ transport, logger: silentLogger, userIndex: new MemoryUserIndex() });
const port = gate.addresses().tcp.port;

function connectOnce() {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    const parser = mqtt.parser({ protocolVersion: 4 });
    let code = 'none';
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') code = p.returnCode;
    });
    s.on('data', (d) => parser.parse(d));
    s.on('error', () => undefined);
    s.on('close', () => resolve(code));
    s.on('connect', () =>
      s.write(mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'same-id', keepalive: 60 })),
    );
    setTimeout(() => s.destroy(), 3000 + AUTH_MS); // taken over or refused sockets close sooner
  });
}

const codes = await Promise.all(Array.from({ length: N }, connectOnce));
const tally = {};
for (const c of codes) tally[c] = (tally[c] ?? 0) + 1;
const banned = gate.bans().some((b) => b.value === 'same-id');
await gate.stop();
await transport.close();
console.log(
  `${N} CONNECTs with one client id at once (auth ${AUTH_MS} ms): CONNACK codes ${JSON.stringify(tally)}; accepted ${tally[0] ?? 0} (flapping maxCount 15); banned after: ${banned}`,
);
