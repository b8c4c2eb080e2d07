/**
 * Inputs and orderings that once broke the gate: an empty SUBSCRIBE, many requests in one
 * socket read, two logins pipelined on one session, a port already in use.
 */
import { createServer, type Server } from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import { GateFunctions, MemoryUserIndex, UserDirectory, type SessionData } from '@mqgate/rpc';
import { Gate } from '@mqgate/gate';
import { startGate, RawClient, type Harness } from './helpers/harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

test('a SUBSCRIBE without topic filters closes that connection only (MQTT-3.8.3-3)', async () => {
  h = await startGate();
  const bad = await RawClient.open(h.tcpPort);
  await bad.connect({ clientId: 'bad' });
  bad.sendBytes(Buffer.from([0x82, 0x02, 0x00, 0x01]));
  await bad.closed;
  const bad2 = await RawClient.open(h.tcpPort);
  await bad2.connect({ clientId: 'bad2' });
  bad2.sendBytes(Buffer.from([0xa2, 0x02, 0x00, 0x01])); // UNSUBSCRIBE without filters
  await bad2.closed;
  const good = await RawClient.open(h.tcpPort);
  expect((await good.connect({ clientId: 'good' })).returnCode).toBe(0);
  good.send({ cmd: 'pingreq' });
  await good.next('pingresp');
  good.destroy();
});

test('requests arriving in one socket read never exceed maxInflight running or queued', async () => {
  h = await startGate({ maxInflight: 5 });
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered = 0;
  let fifth!: () => void;
  const fiveEntered = new Promise<void>((resolve) => (fifth = resolve));
  await h.serve('svc', async () => {
    if (++entered === 5) fifth();
    await gate;
    return { ok: true };
  });
  const raw = await RawClient.open(h.tcpPort);
  await raw.connect({ clientId: 'burst' });
  const burst = Buffer.concat(
    Array.from({ length: 500 }, (_, i) =>
      mqttPacket.generate({ cmd: 'publish', topic: `svc/HD_x/${i}`, payload: Buffer.from('x'), qos: 0, dup: false, retain: false }),
    ),
  );
  raw.sendBytes(burst);
  await fiveEntered;
  expect(h.gate.stats().outstanding).toBeLessThanOrEqual(5);
  release();
  for (let i = 0; i < 500; i++) await raw.next('publish', (p) => (p as mqttPacket.IPublishPacket).topic === `svc/HD_x/${i}`);
  expect(entered).toBe(500);
  raw.destroy();
});

test('two logins pipelined on one session: the last wins and the first leaves no index entry', async () => {
  const index = new MemoryUserIndex();
  h = await startGate({ userIndex: index, duplicateLogin: { policy: 'reject-new' } });
  const t = h.transport;
  await h.serve('user', async (_fn, args) => {
    const s = args[0] as SessionData;
    const { userId } = args[1] as { userId: string };
    const answer = (await t.call({ serverId: s.serverId }, GateFunctions.Bind, [s.sessionId, userId])) as SessionData;
    return { userId: answer.userId };
  });
  const raw = await RawClient.open(h.tcpPort);
  await raw.connect({ clientId: 'two-logins' });
  raw.sendBytes(
    Buffer.concat(
      ['alice', 'bob'].map((u, i) =>
        mqttPacket.generate({
          cmd: 'publish',
          topic: `user/HD_login/${i}`,
          payload: Buffer.from(JSON.stringify({ userId: u })),
          qos: 0,
          dup: false,
          retain: false,
        }),
      ),
    ),
  );
  await raw.next('publish', (p) => (p as mqttPacket.IPublishPacket).topic === 'user/HD_login/0');
  const second = (await raw.next('publish', (p) => (p as mqttPacket.IPublishPacket).topic === 'user/HD_login/1')) as mqttPacket.IPublishPacket;
  expect(JSON.parse(second.payload.toString())).toMatchObject({ Error: '', Result: { userId: 'bob' } });
  const users = new UserDirectory(t, index);
  expect(await users.isConnect('bob')).toBe(true);
  expect(await users.isConnect('alice')).toBe(false);
  raw.destroy();
});

test('a port already in use rejects start() and the process keeps running', async () => {
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    for (const opts of [
      { tcp: { port, host: '127.0.0.1' }, websocket: false as const },
      { tcp: false as const, websocket: { port, host: '127.0.0.1' } },
    ]) {
      const gate = new Gate(opts);
      const { InProcessTransport, silentLogger } = await import('@mqgate/rpc');
      await expect(gate.start({ transport: new InProcessTransport(), logger: silentLogger, userIndex: new MemoryUserIndex() })).rejects.toThrow(
        /EADDRINUSE/,
      );
    }
  } finally {
    blocker.close();
  }
});

test('maxKeepalive: a CONNECT asking for more gets return code 2; at the limit it is accepted', async () => {
  h = await startGate({ maxKeepalive: 120 });
  const over = await RawClient.open(h.tcpPort);
  expect((await over.connect({ clientId: 'long', keepalive: 121 })).returnCode).toBe(2);
  await over.closed;
  const at = await RawClient.open(h.tcpPort);
  expect((await at.connect({ clientId: 'ok', keepalive: 120 })).returnCode).toBe(0);
  at.destroy();
});
