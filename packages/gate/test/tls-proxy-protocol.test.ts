/**
 * PROXY protocol on the mqtts listener: a TCP load balancer that passes TLS
 * through sends the PROXY header before the TLS ClientHello. The header's source address
 * becomes the session's, only from trusted proxies; a connection without one is taken as is.
 * Real sockets, node:tls with a `socket:`, certificates made by openssl at test time.
 */
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import * as mqttPacket from 'mqtt-packet';
import { Command, IPv4Address, IPv4ProxyAddress, TransportProtocol, V2ProxyProtocol } from 'proxy-protocol-js';
import type { ConnectInfo } from '@mqgate/gate';
import { makeTestPki, type TestPki } from '@mqgate/test-support';
import { startGate, type Harness } from './helpers/harness';
import { within } from './helpers/waiters';

const CONNECT = (clientId: string) =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 30 });
const CONNACK_OK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const v1 = (src: string) => Buffer.from(`PROXY TCP4 ${src} 10.0.0.1 56324 8883\r\n`);
const v2 = (src: [number, number, number, number]) =>
  Buffer.from(
    new V2ProxyProtocol(
      Command.PROXY,
      TransportProtocol.STREAM,
      new IPv4ProxyAddress(new IPv4Address(src), 50000, new IPv4Address([10, 0, 0, 1]), 8883),
    ).build(),
  );

let pki: TestPki;
let trusted: Harness;
let untrusted: Harness;
const seen = new Map<string, ConnectInfo>();
const sockets: Socket[] = [];

beforeAll(async () => {
  pki = makeTestPki();
  const mqtts = { port: 0, host: '127.0.0.1', key: pki.serverKey, cert: pki.serverCert, proxyProtocol: true };
  const authenticate = (info: ConnectInfo) => (seen.set(info.clientId, info), true);
  trusted = await startGate({ tcp: false, websocket: false, mqtts, trustedProxies: ['127.0.0.1'], authenticate });
  untrusted = await startGate({ tcp: false, websocket: false, mqtts, trustedProxies: ['10.9.9.9'], authenticate });
});
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});
afterAll(async () => {
  await trusted?.stop();
  await untrusted?.stop();
  pki?.remove();
});

/**
 * A TCP connection to the listener that writes `header` (if any), then speaks TLS over the
 * same socket. `coalesce`: the header and the ClientHello leave in one write (one segment),
 * as a balancer may send them.
 */
async function tlsBehindProxy(g: Harness, header: Buffer | undefined, coalesce = false): Promise<{ tls: TLSSocket; raw: Socket }> {
  const raw = netConnect(g.gate.addresses().mqtts!.port, '127.0.0.1');
  sockets.push(raw);
  await once(raw, 'connect');
  let socket: Duplex = raw;
  if (header && coalesce) {
    let pending: Buffer | undefined = header;
    socket = new Duplex({
      write(chunk: Buffer, _enc, done) {
        raw.write(pending ? Buffer.concat([pending, chunk]) : chunk, done);
        pending = undefined;
      },
      read() {},
      final(done) {
        raw.end(done);
      },
    });
    raw.on('data', (d) => socket.push(d));
    raw.on('end', () => socket.push(null));
    raw.on('close', () => socket.destroy());
  } else if (header) {
    raw.write(header);
  }
  const tls = tlsConnect({ socket, ca: pki.read(pki.caCert), servername: 'localhost' });
  sockets.push(tls);
  tls.on('error', () => undefined);
  return { tls, raw };
}

async function mqttConnect(tls: TLSSocket, clientId: string): Promise<Buffer | 'closed'> {
  const answer = new Promise<Buffer | 'closed'>((resolve) => {
    tls.once('data', resolve);
    tls.once('close', () => resolve('closed'));
  });
  if (!tls.encrypted || !tls.authorized) await once(tls, 'secureConnect');
  tls.write(CONNECT(clientId));
  return within(answer, 5000, `CONNACK for ${clientId}`);
}

test.each([
  ['v1, then the ClientHello', v1('203.0.113.7'), false, '203.0.113.7'],
  ['v1 and the ClientHello in one write', v1('203.0.113.8'), true, '203.0.113.8'],
  ['v2, then the ClientHello', v2([198, 51, 100, 9]), false, '198.51.100.9'],
  ['v2 and the ClientHello in one write', v2([198, 51, 100, 10]), true, '198.51.100.10'],
  ['no header at all', undefined, false, '127.0.0.1'],
])('trusted balancer, %s: TLS completes and the session ip is the client behind it', async (name, header, coalesce, ip) => {
  const clientId = `tls-proxy-${name.replace(/\W+/g, '-')}`;
  const { tls } = await tlsBehindProxy(trusted, header, coalesce);
  expect(await mqttConnect(tls, clientId)).toEqual(CONNACK_OK);
  expect(seen.get(clientId)).toMatchObject({ remoteAddress: ip, secure: true, network: 'tcp' });
});

test('a PROXY header from a peer not in trustedProxies closes the connection before TLS', async () => {
  const { tls, raw } = await tlsBehindProxy(untrusted, v1('203.0.113.9'));
  let secured = false;
  tls.once('secureConnect', () => (secured = true));
  await within(once(raw, 'close'), 5000, 'the untrusted connection closed');
  expect(secured).toBe(false);
});

test('without proxyProtocol the mqtts listener does not look for a header (a direct client connects as before)', async () => {
  const plain = await startGate({ tcp: false, websocket: false, mqtts: { port: 0, host: '127.0.0.1', key: pki.serverKey, cert: pki.serverCert } });
  try {
    const { tls } = await tlsBehindProxy(plain, undefined);
    expect(await mqttConnect(tls, 'tls-direct')).toEqual(CONNACK_OK);
  } finally {
    await plain.stop();
  }
});
