import { startGate, RawClient, type Harness } from './helpers/harness';

describe('connection caps', () => {
  let h: Harness;
  afterEach(() => h.stop());

  test('maxConnections: one more connection is closed at once, and a freed slot is usable again', async () => {
    h = await startGate({ maxConnections: 2 });
    const a = await RawClient.open(h.tcpPort);
    const b = await RawClient.open(h.tcpPort);
    expect((await a.connect({ clientId: 'a' })).returnCode).toBe(0);
    expect((await b.connect({ clientId: 'b' })).returnCode).toBe(0);
    const c = await RawClient.open(h.tcpPort);
    await c.closed;
    expect(c.packets).toEqual([]);
    const gone = new Promise((resolve) => h.gate.once('disconnect', resolve));
    a.destroy();
    await gone;
    const d = await RawClient.open(h.tcpPort);
    expect((await d.connect({ clientId: 'd' })).returnCode).toBe(0);
    b.destroy();
    d.destroy();
  });

  test('maxConnectionsPerIp counts connections of one address', async () => {
    h = await startGate({ maxConnectionsPerIp: 1 });
    const a = await RawClient.open(h.tcpPort);
    expect((await a.connect({ clientId: 'a' })).returnCode).toBe(0);
    const b = await RawClient.open(h.tcpPort);
    await b.closed;
    expect(h.gate.stats().connections).toBe(1);
    a.destroy();
  });
});
