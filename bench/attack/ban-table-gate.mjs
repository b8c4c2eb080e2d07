// The gate under the ban-table attack (bench/attack/ban-table-fill.mjs): a Gate with its
// default limits, an in-process transport, TCP on an OS-chosen loopback port. Prints
// `port <n>` once listening; answers IPC requests `{ id, op: 'ban' | 'bans' | 'stop', … }`.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Gate } = require('../../packages/gate/dist/index.js');
const { InProcessTransport, MemoryUserIndex, silentLogger } = require('../../packages/rpc/dist/index.js');

const transport = new InProcessTransport();
const gate = new Gate({ tcp: { port: 0, host: '0.0.0.0' } });
await gate.start({ transport, logger: silentLogger, userIndex: new MemoryUserIndex() });
process.send({ port: gate.addresses().tcp.port });

process.on('message', async (m) => {
  try {
    if (m.op === 'ban') {
      await gate.ban({ clientId: m.clientId }, 60_000);
      await gate.unban({ clientId: m.clientId });
      process.send({ id: m.id, ok: true });
    } else if (m.op === 'bans') {
      const bans = gate.bans();
      process.send({ id: m.id, ok: true, bans: bans.length, flapper: bans.some((b) => b.value === m.clientId) });
    } else if (m.op === 'stop') {
      await gate.stop();
      await transport.close();
      process.send({ id: m.id, ok: true });
      process.exit(0);
    }
  } catch (err) {
    process.send({ id: m.id, ok: false, error: `${err.name}: ${err.message}` });
  }
});
