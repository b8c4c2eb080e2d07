/**
 * The gate's log lines: one debug line per connection close with its reason,
 * one warn line per failed request with the connection's trace id, none for a successful
 * request at info or above, and a warn line for an event-loop stall over 1 s. Captured with
 * a Logger passed in the options.
 */
import { CLIENT_TEXTS, gateClient, RpcError, type Logger } from '@mqgate/rpc';
import { Connections } from './helpers/connections';
import { startGate, request, type Harness } from './helpers/harness';
import { closeOf, nextSession, within } from './helpers/waiters';

interface Line {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  msg: string;
}

const lines: Line[] = [];
const waiting: Array<{ match: (l: Line) => boolean; found: (l: Line) => void }> = [];
function record(level: Line['level']) {
  return (fields: object, msg: string) => {
    const line = { level, fields: fields as Record<string, unknown>, msg };
    lines.push(line);
    for (const w of waiting.splice(0)) {
      if (w.match(line)) w.found(line);
      else waiting.push(w);
    }
  };
}
const logger: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };

/** The first line (already written or to come) that matches. */
function lineWhere(what: string, match: (l: Line) => boolean, ms = 5000): Promise<Line> {
  const seen = lines.find(match);
  if (seen) return Promise.resolve(seen);
  return within(new Promise<Line>((found) => waiting.push({ match, found })), ms, what);
}
const closeLine = (clientId: string) =>
  lineWhere(`close line of ${clientId}`, (l) => l.msg === 'connection closed' && l.fields.clientId === clientId);

let h: Harness;
const conns = new Connections();

beforeAll(async () => {
  h = await startGate({ logger, handlerTimeout: 400 });
  await h.serve('svc', async (fn, args) => {
    if (fn === 'HD_echo') return args[1];
    if (fn === 'HD_fail') throw new RpcError('no such order', 'NOT_FOUND');
    if (fn === 'HD_hang') return new Promise(() => undefined);
    return null;
  });
});
afterEach(() => conns.closeAll());
afterAll(() => h.stop());

describe('one debug line per connection close, with the reason', () => {
  test('client DISCONNECT, bound to a user: reason, clientId, userId, ip, network, duration', async () => {
    const s = nextSession(h);
    const c = await conns.mqtt(h.tcpUrl, { clientId: 'log-disconnect' });
    await gateClient(h.transport, h.gate.serverId).bind((await s).sessionId, 'alice');
    await c.endAsync();
    const line = await closeLine('log-disconnect');
    expect(line.level).toBe('debug');
    expect(line.fields).toMatchObject({ reason: 'client_disconnect', userId: 'alice', ip: '127.0.0.1', network: 'tcp' });
    expect(line.fields.durationMs).toEqual(expect.any(Number));
    expect(line.fields.durationMs as number).toBeGreaterThanOrEqual(0);
  });

  test('network loss, malformed input, kick and takeover each name their reason', async () => {
    const lost = await conns.connectedRaw(h.tcpPort, 'log-network');
    lost.destroy();
    expect((await closeLine('log-network')).fields).toMatchObject({ reason: 'network', userId: undefined });

    const bad = await conns.connectedRaw(h.tcpPort, 'log-malformed');
    bad.sendBytes(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])); // a 5-byte Remaining Length (MQTT-2.2.3)
    expect((await closeLine('log-malformed')).fields).toMatchObject({ reason: 'malformed', detail: expect.stringMatching(/^malformed/) });

    const s = nextSession(h);
    const kicked = await conns.mqtt(h.tcpUrl, { clientId: 'log-kick' });
    const kickedClosed = closeOf(kicked);
    expect(h.gate.kick((await s).sessionId, 'bye')).toBe(true);
    await kickedClosed;
    expect((await closeLine('log-kick')).fields).toMatchObject({ reason: 'kick' });

    await conns.connectedRaw(h.tcpPort, 'log-takeover');
    await conns.connectedRaw(h.tcpPort, 'log-takeover');
    expect((await closeLine('log-takeover')).fields).toMatchObject({ reason: 'takeover', network: 'tcp' });
  });
});

describe('one warn line per failed request, with the trace id of the reply', () => {
  test('a successful request writes nothing at info or above', async () => {
    const c = await conns.mqtt(h.tcpUrl, { clientId: 'log-ok' });
    const before = lines.filter((l) => l.level !== 'debug').length;
    expect((await request(c, 'svc/HD_echo/1', '{"a":1}')).Error).toBe('');
    expect((await request(c, 'svc/HD_echo/2', '{"a":2}')).Error).toBe('');
    expect(lines.filter((l) => l.level !== 'debug')).toHaveLength(before);
  });

  test('handler error, routing error and deadline: outcome, trace, msgid, code', async () => {
    const c = await conns.mqtt(h.tcpUrl, { clientId: 'log-fail' });
    const failed = (outcome: string) =>
      lineWhere(`${outcome} line`, (l) => l.level === 'warn' && l.msg === 'request failed' && l.fields.outcome === outcome);

    const handler = await request(c, 'svc/HD_fail/7', '{}');
    expect(handler.Error).toBe(CLIENT_TEXTS.NOT_FOUND); // an mqgate code: its client text; the handler's message is logged
    expect((await failed('handler_error')).fields).toMatchObject({
      kind: 'request:handler_error',
      trace: handler.Trace,
      topic: 'svc/HD_fail/7',
      msgid: '7',
      code: 'NOT_FOUND',
      error: 'no such order',
      clientId: 'log-fail',
    });

    const routing = await request(c, 'nomodule/HD_x/8', '{}');
    expect(routing.Error).not.toBe('');
    expect((await failed('routing_error')).fields).toMatchObject({ trace: routing.Trace, topic: 'nomodule/HD_x/8', msgid: '8' });

    const deadline = await request(c, 'svc/HD_hang/9', '{}');
    expect(deadline.Error).not.toBe('');
    expect((await failed('deadline')).fields).toMatchObject({ trace: deadline.Trace, msgid: '9', kind: 'request:deadline' });
  });
});

test('an event-loop stall over 1 s is logged at warn with its length and the CPU used meanwhile', async () => {
  const started = Date.now();
  while (Date.now() - started < 1300) {
    // busy: nothing else runs, timers included
  }
  const line = await lineWhere('stall line', (l) => l.fields.kind === 'event-loop-stall');
  expect(line.level).toBe('warn');
  expect(line.fields.stalledMs as number).toBeGreaterThan(1000);
  // The busy loop was on CPU for some of it (how much depends on what else the machine ran).
  expect(line.fields.cpuMs).toEqual(expect.any(Number));
  expect(line.fields.cpuMs as number).toBeGreaterThan(0);
});
