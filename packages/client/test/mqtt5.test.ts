// The backend side of MQTT 5 (issue 9): ctx.mqtt5, reply properties, Session.protocolVersion, push properties.
import { InProcessTransport, MemoryUserIndex, REPLY_PROPERTIES_TAG, makeSessionData, silentLogger, type AppContext } from '@mqgate/rpc';
import { ModuleHost, Session, defineModule, replyWithProperties, type HandlerContext } from '@mqgate/client';
import { FakeGate } from './helpers/fake-gate';

let transport: InProcessTransport;
let gate: FakeGate;
let ctx: AppContext;
beforeEach(async () => {
  transport = new InProcessTransport();
  gate = await FakeGate.start(transport);
  ctx = { transport, logger: silentLogger, userIndex: new MemoryUserIndex() };
});
afterEach(() => transport.close());

describe('handler context and reply properties', () => {
  test('ctx.mqtt5 carries the request context; a replyWithProperties result crosses the transport as the tagged list', async () => {
    const seen: Array<HandlerContext['mqtt5']> = [];
    const host = new ModuleHost(
      defineModule({
        type: 'm',
        handlers: {
          HD_x: (_s, payload, c) => {
            seen.push(c.mqtt5);
            return replyWithProperties(payload as Record<string, unknown>, { userProperties: { a: '1' }, contentType: 'text/x' });
          },
        },
      }),
    );
    await host.start(ctx);
    const mqtt5 = { userProperties: { k: ['1', '2'] }, contentType: 'application/json', correlationData: Buffer.from('c') };
    const result = await transport.call({ moduleType: 'm' }, 'HD_x', [gate.connect({ topic: 'm/HD_x', protocolVersion: 5, mqtt5 }), { q: 1 }]);
    expect(result).toEqual([REPLY_PROPERTIES_TAG, { userProperties: { a: '1' }, contentType: 'text/x' }, { q: 1 }]);
    await transport.call({ moduleType: 'm' }, 'HD_x', [gate.connect({ topic: 'm/HD_x', protocolVersion: 4 }), {}]);
    expect(seen).toEqual([mqtt5, undefined]);
    await host.stop();
  });

  test('replyWithProperties checks its arguments', () => {
    expect(() => replyWithProperties(null, { userProperties: { a: 1 as unknown as string } })).toThrow(TypeError);
    expect(() => replyWithProperties(null, { contentType: 5 as unknown as string })).toThrow(TypeError);
  });
});

describe('Session', () => {
  test('protocolVersion is the connection level, 0 when the gate did not say', () => {
    expect(new Session(gate.connect({ protocolVersion: 5 }), transport).protocolVersion).toBe(5);
    expect(new Session(makeSessionData({ sessionId: 's' }), transport).protocolVersion).toBe(0);
  });

  test('push properties travel as an extra last argument only when given (mqant sends three)', async () => {
    const s = new Session(gate.connect({ protocolVersion: 5 }), transport);
    await s.send('t', 'plain');
    await s.send('t', 'rich', { userProperties: { a: 'b' }, contentType: 'text/plain', messageExpiryInterval: 30 });
    const sends = gate.callsTo('Send');
    expect(sends[0].args).toHaveLength(3);
    expect(sends[1].args[3]).toEqual({ userProperties: { a: 'b' }, contentType: 'text/plain', messageExpiryInterval: 30 });
    await s.broadcast('t', 'all', { contentType: 'text/plain' });
    expect(gate.callsTo('BroadCast')[0].args[2]).toEqual({ contentType: 'text/plain' });
    await s.sendBatch([s.sessionId], 't', 'b', { userProperties: { x: 'y' } });
    expect(gate.callsTo('SendBatch')[0].args[3]).toEqual({ userProperties: { x: 'y' } });
  });

  test('bad push properties throw a TypeError naming the verb', async () => {
    const s = new Session(gate.connect(), transport);
    await expect(s.send('t', 'x', { messageExpiryInterval: 0 })).rejects.toThrow(/Session.send: messageExpiryInterval/);
    await expect(s.broadcast('t', 'x', { userProperties: { a: [1] as unknown as string[] } })).rejects.toThrow(/Session.broadcast: userProperties\["a"\]/);
  });
});
