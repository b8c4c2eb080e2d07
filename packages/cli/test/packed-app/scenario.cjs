// What the packed-app test runs in an app outside the repository, once from CommonJS (app.cjs)
// and once from ESM (app.mjs), each passing the packages' exports as it loaded them: a gate on
// an OS-picked port with an in-process transport, MemoryStorage and one module; a request in
// mqant's form from MQTT.js (the reply comes on the request's topic) and one from @mqgate/sdk
// that binds the session; then a clean stop. It prints one JSON line of what came back, and the
// process must exit by itself (nothing left open).
'use strict';

/**
 * @param {Record<string, any>} p the exports: createApp, defineModule, Gate, InProcessTransport, MemoryStorage, connect (sdk), mqtt;
 *   and sdkEntry, the file @mqgate/sdk resolved to (its CommonJS or its ESM build)
 */
async function run(p) {
  const hello = p.defineModule({
    type: 'hello',
    handlers: {
      HD_hi: async (session, payload) => ({ hi: payload.name, guest: session.isGuest() }),
      HD_login: async (session, payload) => {
        await session.bind(payload.userId);
        return { userId: session.userId };
      },
    },
  });
  const app = p.createApp({ transport: new p.InProcessTransport() });
  app.module(hello);
  const gate = new p.Gate({ tcp: { port: 0, host: '127.0.0.1' }, websocket: false, storage: new p.MemoryStorage() });
  app.use(gate);
  await app.start();
  const url = `mqtt://127.0.0.1:${gate.addresses().tcp.port}`;

  const raw = await p.mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 });
  const replied = new Promise((resolve) => raw.once('message', (topic, body) => resolve({ topic, body: JSON.parse(body.toString()) })));
  await raw.publishAsync('hello/HD_hi/1', JSON.stringify({ name: 'mqtt.js' }));
  const mqttReply = await replied;
  await raw.endAsync();

  const sdk = await p.connect(url, { reconnect: false });
  const sdkReply = await sdk.request('hello/HD_login', { userId: 'alice' });
  await sdk.close();

  await app.stop();
  process.stdout.write(JSON.stringify({ mqttReply, sdkReply, sdkEntry: p.sdkEntry }) + '\n');
}

module.exports = { run };
