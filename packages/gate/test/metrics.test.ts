/**
 * The metrics / probes server (`metricsPort`): /metrics parsed after a known workload with
 * every counter checked exactly, handler labels capped, /healthz, /readyz during start,
 * running, a storage outage, and stop.
 */
import { gateClient, InProcessTransport, MemoryUserIndex, RpcError, silentLogger, type SessionData } from '@mqgate/rpc';
import { Gate } from '@mqgate/gate';
import { closeReasonLabel } from '../src/ops/metrics';
import { Connections } from './helpers/connections';
import { CountingStorage } from './helpers/counting-storage';
import { request, startGate, type Harness } from './helpers/harness';
import { nextSession, waitUntil, within } from './helpers/waiters';

/** Prometheus text → `name{labels}` → value (labels as written, sorted by prom-client). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

const conns = new Connections();
afterEach(() => conns.closeAll());

describe('after a known workload', () => {
  let h: Harness;
  let storage: CountingStorage;
  let metrics: Map<string, number>;
  const port = () => h.gate.addresses().metrics!.port;

  beforeAll(async () => {
    storage = new CountingStorage();
    h = await startGate({
      metricsPort: 0,
      metricsHost: '127.0.0.1',
      metricsHandlerCap: 3,
      handlerTimeout: 150,
      storage,
      authenticate: (info) => info.username !== 'bad',
    });
    await h.serve('svc', async (fn) => {
      if (fn === 'HD_fail') throw new RpcError('boom', 'broken');
      if (fn === 'HD_slow') await new Promise((r) => setTimeout(r, 400));
      return 'ok';
    });
    await h.serve('cap', async () => 'ok');

    const a = await conns.mqtt(h.tcpUrl, { clientId: 'a' });
    for (let i = 0; i < 3; i++) expect((await request(a, `svc/HD_ok/${i}`, '{}')).Error).toBe('');
    for (let i = 0; i < 2; i++) expect((await request(a, `svc/HD_fail/${i}`, '{}')).Error).not.toBe('');
    expect((await request(a, 'svc/HD_slow/1', '{}')).Error).toMatch(/deadline|timed out/i);
    expect((await request(a, 'nomodule/HD_x/1', '{}')).Error).not.toBe('');
    expect((await request(a, 'svc', '{}')).Error).not.toBe('');
    for (const n of [1, 2, 3, 4, 5]) await request(a, `cap/HD_h${n}/1`, '{}');
    const closedA = new Promise((r) => h.gate.once('disconnect', r));
    await a.endAsync();
    await closedA;

    const wsSession = nextSession(h);
    await conns.mqtt(h.wsUrl, { clientId: 'b' });
    const b = await wsSession;
    const gate = gateClient(h.transport, h.gate.serverId);
    await gate.bind(b.sessionId, 'user-1');
    storage.failing = true;
    await expect(gate.bind(b.sessionId, 'user-2')).rejects.toThrow();
    const closedB = new Promise((r) => h.gate.once('disconnect', r));
    h.gate.kick(b.sessionId, 'bye');
    await closedB;
    await expect(conns.mqtt(h.tcpUrl, { clientId: 'c', username: 'bad' })).rejects.toThrow(/Not authorized/i);
    await waitUntil(
      'refused close counted',
      async () => parseMetrics((await get(port(), '/metrics')).body).get('mqgate_connections_refused_total{code="5"}') === 1,
    );
    metrics = parseMetrics((await get(port(), '/metrics')).body);
  });
  afterAll(async () => {
    await h?.stop();
  });

  test('requests by module, handler and outcome, exactly', () => {
    const req = (module: string, handler: string, outcome: string) =>
      metrics.get(`mqgate_requests_total{module="${module}",handler="${handler}",outcome="${outcome}"}`);
    expect(req('svc', 'HD_ok', 'ok')).toBe(3);
    expect(req('svc', 'HD_fail', 'handler_error')).toBe(2);
    expect(req('svc', 'HD_slow', 'deadline')).toBe(1);
    expect(req('nomodule', 'HD_x', 'routing_error')).toBe(1);
    expect(req('', '', 'routing_error')).toBe(1);
    expect(metrics.get('mqgate_request_duration_seconds_count{module="svc"}')).toBe(6);
  });

  test('handler labels past the cap fold into "other"', () => {
    const cap = [...metrics.keys()].filter((k) => k.startsWith('mqgate_requests_total{module="cap"'));
    expect(cap.sort()).toEqual([
      'mqgate_requests_total{module="cap",handler="HD_h1",outcome="ok"}',
      'mqgate_requests_total{module="cap",handler="HD_h2",outcome="ok"}',
      'mqgate_requests_total{module="cap",handler="HD_h3",outcome="ok"}',
      'mqgate_requests_total{module="cap",handler="other",outcome="ok"}',
    ]);
    expect(metrics.get('mqgate_requests_total{module="cap",handler="other",outcome="ok"}')).toBe(2);
  });

  test('connections accepted, refused by code, closed by reason', () => {
    expect(metrics.get('mqgate_connections_accepted_total')).toBe(2);
    expect(metrics.get('mqgate_connections_refused_total{code="5"}')).toBe(1);
    expect(metrics.get('mqgate_connections_closed_total{reason="client_disconnect"}')).toBe(1);
    expect(metrics.get('mqgate_connections_closed_total{reason="kick"}')).toBe(1);
    expect(metrics.get('mqgate_connections_closed_total{reason="refused"}')).toBe(1);
    expect(metrics.get('mqgate_sessions')).toBe(0);
  });

  test('packets by type, messages, bytes, transport and storage calls', () => {
    // a: CONNECT, 13 PUBLISH, DISCONNECT; b: CONNECT; c: CONNECT
    expect(metrics.get('mqgate_packets_received_total{type="connect"}')).toBe(3);
    expect(metrics.get('mqgate_packets_received_total{type="publish"}')).toBe(13);
    expect(metrics.get('mqgate_packets_received_total{type="disconnect"}')).toBe(1);
    // 13 replies + the kick push + 2 resume-token pushes on gate/session (one per bind)
    expect(metrics.get('mqgate_messages_sent_total')).toBe(16);
    expect(metrics.get('mqgate_messages_dropped_total')).toBe(0);
    expect(metrics.get('mqgate_received_bytes_total')).toBeGreaterThan(13 * 12);
    expect(metrics.get('mqgate_sent_bytes_total')).toBeGreaterThan(14 * 20);
    expect(metrics.get('mqgate_transport_calls_total{outcome="ok"}')).toBe(10);
    expect(metrics.get('mqgate_transport_calls_total{outcome="deadline"}')).toBe(1);
    expect(metrics.get('mqgate_transport_calls_total{outcome="routing_error"}')).toBe(1);
    expect(metrics.get('mqgate_storage_calls_total{method="query",outcome="ok"}')).toBe(1);
    expect(metrics.get('mqgate_storage_calls_total{method="query",outcome="error"}')).toBe(1);
  });

  test('default process metrics are there, prefixed', () => {
    expect(metrics.get('mqgate_nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect([...metrics.keys()].some((k) => k.startsWith('mqgate_nodejs_eventloop_lag_seconds'))).toBe(true);
    expect([...metrics.keys()].filter((k) => !k.startsWith('mqgate_'))).toEqual([]);
  });

  test('/readyz reports the storage outage until a call succeeds; /healthz is 200; unknown paths 404', async () => {
    expect(await get(port(), '/readyz')).toEqual({ status: 503, body: '{"listeners":true,"transport":true,"storage":false,"accepting":true}\n' });
    storage.failing = false;
    const s = nextSession(h);
    await conns.mqtt(h.tcpUrl, { clientId: 'd' });
    await gateClient(h.transport, h.gate.serverId).bind((await s).sessionId, 'user-3');
    expect((await get(port(), '/readyz')).status).toBe(200);
    expect(await get(port(), '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect((await get(port(), '/nope')).status).toBe(404);
  });
});

test('close reasons map to a bounded set of labels', () => {
  expect(closeReasonLabel('keepalive timeout (MQTT-3.1.2-24; MQTT 5: MQTT-3.1.2-22)')).toBe('keepalive');
  expect(closeReasonLabel('malformed packet: bad')).toBe('malformed');
  expect(closeReasonLabel('packet of 99999 bytes exceeds maxPacketSize 65536')).toBe('too_large');
  expect(closeReasonLabel('slow consumer: 5 bytes unsent, over maxBufferedBytes 4')).toBe('slow_consumer');
  expect(closeReasonLabel('kicked: session taken over by a new connection with the same client id (MQTT-3.1.4-2; MQTT 5: MQTT-3.1.4-3)')).toBe(
    'takeover',
  );
  expect(closeReasonLabel('kicked: server shutting down')).toBe('shutdown');
  expect(closeReasonLabel('connection lost: ECONNRESET')).toBe('network');
  expect(closeReasonLabel('second CONNECT (MQTT-3.1.0-2)')).toBe('protocol_error');
});

test('/readyz: 503 while the transport is not ready, 200 running, 503 once stopping; off by default', async () => {
  let ready!: () => void;
  const transport = new InProcessTransport();
  Object.assign(transport, { ready: () => new Promise<void>((r) => (ready = r)) });
  const gate = new Gate({ tcp: { port: 0, host: '127.0.0.1' }, websocket: false, metricsPort: 0, metricsHost: '127.0.0.1' });
  const started = gate.start({ transport, logger: silentLogger, userIndex: new MemoryUserIndex() });
  await waitUntil('metrics server bound', () => gate.addresses().metrics);
  const port = gate.addresses().metrics!.port;
  expect(await get(port, '/readyz')).toEqual({ status: 503, body: '{"listeners":false,"transport":false,"storage":true,"accepting":true}\n' });
  ready();
  await started;
  expect((await get(port, '/readyz')).status).toBe(200);
  const stopping = new Promise<SessionData>((r) => gate.once('connect', r));
  const c = await conns.mqtt(`mqtt://127.0.0.1:${gate.addresses().tcp!.port}`, { clientId: 'st' });
  await stopping;
  const stopped = gate.drain();
  expect(gate.readiness()).toEqual({ listeners: false, transport: true, storage: true, accepting: false });
  await within(stopped, 15_000, 'stop');
  expect(c.connected).toBe(false);
  const plain = await startGate();
  expect(plain.gate.addresses().metrics).toBeUndefined();
  expect(plain.gate.metrics).toBeUndefined();
  await plain.stop();
  await transport.close();
});
