/**
 * TLS listeners: mqtts and wss with MQTT.js, ALPN `mqtt`, client certificates reaching the
 * authenticate hook, and certificates reloaded (file change, reloadTls()) without dropping
 * the connections already open. Certificates are made by openssl at test time.
 */
import { once } from 'node:events';
import { copyFileSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import type { ConnectInfo, TlsReload } from '@mqgate/gate';
import type { RpcValue } from '@mqgate/rpc';
import { makeTestPki, SERVER_CERT_EXTENSIONS, type TestPki } from '@mqgate/test-support';
import { Connections } from './helpers/connections';
import { request, startGate, type Harness } from './helpers/harness';
import { within } from './helpers/waiters';

let pki: TestPki;
let h: Harness;
let mtls: Harness;
const seen: ConnectInfo[] = [];
const conns = new Connections();

const echo = async (fn: string, args: RpcValue[]): Promise<RpcValue> => (fn === 'HD_echo' ? args[1] : null);

beforeAll(async () => {
  pki = makeTestPki();
  const files = { key: pki.serverKey, cert: pki.serverCert };
  h = await startGate({
    mqtts: { port: 0, host: '127.0.0.1', ...files },
    wss: { port: 0, host: '127.0.0.1', ...files },
    authenticate: (info) => (seen.push(info), true),
  });
  await h.serve('svc', echo);
  mtls = await startGate({
    tcp: false,
    websocket: false,
    mqtts: { port: 0, host: '127.0.0.1', key: pki.read(pki.serverKey), cert: pki.read(pki.serverCert), ca: pki.caCert, requestCert: true },
    authenticate: (info) => (seen.push(info), info.certificate?.subject.O === 'acme'),
  });
  await mtls.serve('svc', echo);
});

beforeEach(() => (seen.length = 0));
afterEach(() => conns.closeAll());
afterAll(async () => {
  await h?.stop();
  await mtls?.stop();
  pki?.remove();
});

const port = (g: Harness, which: 'mqtts' | 'wss') => g.gate.addresses()[which]!.port;

/** The certificate a fresh handshake gets, and the ALPN protocol chosen. */
async function handshake(p: number, alpn?: string[]): Promise<{ cert: PeerCertificate; alpn: string | false | null }> {
  const s = tlsConnect({ port: p, host: '127.0.0.1', servername: 'localhost', ca: pki.read(pki.caCert), ALPNProtocols: alpn });
  await once(s, 'secureConnect');
  const out = { cert: s.getPeerCertificate(), alpn: s.alpnProtocol };
  s.destroy();
  return out;
}

test('mqtts: MQTT.js connects with the CA, requests are routed, the hook sees secure: true', async () => {
  const c = await conns.mqtt(`mqtts://127.0.0.1:${port(h, 'mqtts')}`, { ca: pki.read(pki.caCert), servername: 'localhost', clientId: 'tls-1' });
  const reply = await within(request(c, 'svc/HD_echo/1', '{"a":1}'), 3000, 'reply');
  expect(reply).toEqual({ Trace: expect.any(String), Error: '', Result: { a: 1 } });
  expect(seen).toEqual([expect.objectContaining({ clientId: 'tls-1', network: 'tcp', secure: true, certificate: undefined })]);
});

test('mqtts offers ALPN "mqtt" and still accepts a client that offers none', async () => {
  expect((await handshake(port(h, 'mqtts'), ['mqtt'])).alpn).toBe('mqtt');
  expect((await handshake(port(h, 'mqtts'))).alpn).toBe(false);
  // a client offering only other protocols (AWS IoT's) is accepted too, with the one it offered
  expect((await handshake(port(h, 'mqtts'), ['x-amzn-mqtt-ca'])).alpn).toBe('x-amzn-mqtt-ca');
  // wss: a browser offers h2 and http/1.1; the handshake must not fail with no_application_protocol
  expect((await handshake(port(h, 'wss'), ['h2', 'http/1.1'])).alpn).toBe('http/1.1');
});

test('wss: MQTT.js over secure WebSocket; network websocket, secure: true', async () => {
  const c = await conns.mqtt(`wss://127.0.0.1:${port(h, 'wss')}/mqtt`, { ca: pki.read(pki.caCert), servername: 'localhost', clientId: 'wss-1' });
  const reply = await within(request(c, 'svc/HD_echo/1', '{"b":2}'), 3000, 'reply');
  expect(reply.Result).toEqual({ b: 2 });
  expect(seen).toEqual([expect.objectContaining({ clientId: 'wss-1', network: 'websocket', secure: true })]);
});

test('the plain listeners still report secure: false', async () => {
  await conns.mqtt(h.tcpUrl, { clientId: 'plain-1' });
  expect(seen).toEqual([expect.objectContaining({ clientId: 'plain-1', secure: false, certificate: undefined })]);
});

test('requestCert: the verified subject reaches the hook; no certificate fails the handshake', async () => {
  const url = `mqtts://127.0.0.1:${port(mtls, 'mqtts')}`;
  const tls = { ca: pki.read(pki.caCert), servername: 'localhost' };
  const c = await conns.mqtt(url, { ...tls, key: pki.read(pki.clientKey), cert: pki.read(pki.clientCert), clientId: 'dev-17' });
  expect((await within(request(c, 'svc/HD_echo/1', '{"c":3}'), 3000, 'reply')).Result).toEqual({ c: 3 });
  expect(seen).toHaveLength(1);
  expect(seen[0].certificate).toEqual({
    subject: { O: 'acme', CN: 'device-17' },
    issuer: { CN: 'mqgate test CA' },
    fingerprint256: expect.stringMatching(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/),
    serialNumber: expect.any(String),
  });
  await expect(conns.mqtt(url, { ...tls, clientId: 'no-cert', connectTimeout: 2000 })).rejects.toThrow();
  expect(seen).toHaveLength(1);
});

test('a client certificate of another subject is refused by the hook (CONNACK 5)', async () => {
  const other = pki.issue('other-client', '/O=evil/CN=device-66', 'extendedKeyUsage=clientAuth\n');
  const url = `mqtts://127.0.0.1:${port(mtls, 'mqtts')}`;
  const opts = { ca: pki.read(pki.caCert), servername: 'localhost', key: pki.read(other.key), cert: pki.read(other.cert), clientId: 'dev-66' };
  await expect(conns.mqtt(url, opts)).rejects.toThrow(/Not authorized/i);
  expect(seen[0].certificate?.subject).toEqual({ O: 'evil', CN: 'device-66' });
});

test('a changed certificate file is reloaded: new handshakes get it, open connections stay', async () => {
  const before = await handshake(port(h, 'mqtts'));
  const tcpClient = await conns.mqtt(`mqtts://127.0.0.1:${port(h, 'mqtts')}`, {
    ca: pki.read(pki.caCert),
    servername: 'localhost',
    clientId: 'stay-tls',
  });
  const wsClient = await conns.mqtt(`wss://127.0.0.1:${port(h, 'wss')}/mqtt`, {
    ca: pki.read(pki.caCert),
    servername: 'localhost',
    clientId: 'stay-wss',
  });
  const rotated = pki.issue('rotated', '/O=rotated/CN=localhost', SERVER_CERT_EXTENSIONS);
  const reloaded = new Promise<TlsReload[]>((resolve) => {
    const ok: TlsReload[] = [];
    const on = (r: TlsReload) => {
      if (r.error) return; // a reload between the two writes (key new, cert old) keeps the old pair
      ok.push(r);
      if (ok.length === 2) {
        h.gate.off('tlsReload', on);
        resolve(ok);
      }
    };
    h.gate.on('tlsReload', on);
  });
  copyFileSync(rotated.key, pki.serverKey);
  copyFileSync(rotated.cert, pki.serverCert);
  expect((await within(reloaded, 5000, 'tlsReload of both listeners')).map((r) => r.listener).sort()).toEqual(['mqtts', 'wss']);
  const after = await handshake(port(h, 'mqtts'));
  expect(before.cert.subject.O).toBeUndefined();
  expect(after.cert.subject.O).toBe('rotated');
  expect((await handshake(port(h, 'wss'))).cert.subject.O).toBe('rotated');
  expect(tcpClient.connected && wsClient.connected).toBe(true);
  expect((await within(request(tcpClient, 'svc/HD_echo/2', '{"d":4}'), 3000, 'reply after reload')).Result).toEqual({ d: 4 });
  expect((await within(request(wsClient, 'svc/HD_echo/2', '{"e":5}'), 3000, 'reply after reload')).Result).toEqual({ e: 5 });
});

test('reloadTls() with a broken file reports the error and keeps serving the old certificate', async () => {
  const good = pki.read(pki.serverCert);
  writeFileSync(pki.serverCert, 'not a certificate');
  const results = await h.gate.reloadTls();
  writeFileSync(pki.serverCert, good);
  expect(results).toEqual([
    { listener: 'mqtts', error: expect.stringMatching(/rejected/) },
    { listener: 'wss', error: expect.stringMatching(/rejected/) },
  ]);
  const c = await conns.mqtt(`mqtts://127.0.0.1:${port(h, 'mqtts')}`, { ca: pki.read(pki.caCert), servername: 'localhost', clientId: 'after-bad' });
  expect(c.connected).toBe(true);
});

test('a gate without TLS listeners reloads nothing', async () => {
  expect(await mtls.gate.reloadTls()).toEqual([{ listener: 'mqtts' }]);
  const plain = await startGate();
  expect(await plain.gate.reloadTls()).toEqual([]);
  await plain.stop();
});
