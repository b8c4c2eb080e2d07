/**
 * PROXY protocol v1/v2 on the TCP listener: the header's source address becomes the
 * session's, only from trusted proxies; malformed, oversize or untrusted headers close the
 * connection; a connection without a header is taken as is.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import {
  Command,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  TransportProtocol,
  V2ProxyProtocol,
  type IPv6AddressTuple,
} from 'proxy-protocol-js';
import { MAX_V1_HEADER, MAX_V2_HEADER, parseProxyHeader, ProxyHeaderError } from '../src/wire/proxy-protocol';
import { startGate, type Harness } from './helpers/harness';
import { nextSession, within } from './helpers/waiters';

const CONNECT = (clientId: string) =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 30 });

const v4 = (src: [number, number, number, number], command = Command.PROXY) =>
  Buffer.from(
    new V2ProxyProtocol(
      command,
      TransportProtocol.STREAM,
      new IPv4ProxyAddress(new IPv4Address(src), 50000, new IPv4Address([10, 0, 0, 1]), 3563),
    ).build(),
  );
const v6 = (src: number[]) =>
  Buffer.from(
    new V2ProxyProtocol(
      Command.PROXY,
      TransportProtocol.STREAM,
      new IPv6ProxyAddress(new IPv6Address(src as IPv6AddressTuple), 50000, IPv6Address.createWithEmptyAddress(), 3563),
    ).build(),
  );
const v1 = (line: string) => Buffer.from(`${line}\r\n`);

describe('parseProxyHeader', () => {
  const mqtt = Buffer.from([0x10, 0x0c]);
  test('v1 TCP4 / TCP6 / UNKNOWN, the bytes after the header kept', () => {
    expect(parseProxyHeader(Buffer.concat([v1('PROXY TCP4 203.0.113.7 10.0.0.1 56324 3563'), mqtt]), true)).toEqual({
      remoteAddress: '203.0.113.7',
      head: mqtt,
    });
    expect(parseProxyHeader(v1('PROXY TCP6 2001:db8::7 2001:db8::1 56324 3563'), true)?.remoteAddress).toBe('2001:db8::7');
    expect(parseProxyHeader(v1('PROXY UNKNOWN'), true)).toEqual({ remoteAddress: undefined, head: Buffer.alloc(0) });
  });
  test('v2 IPv4, IPv6 (mapped and not), LOCAL', () => {
    expect(parseProxyHeader(Buffer.concat([v4([198, 51, 100, 9]), mqtt]), true)).toEqual({ remoteAddress: '198.51.100.9', head: mqtt });
    expect(parseProxyHeader(v6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]), true)?.remoteAddress).toBe('2001:db8::9');
    expect(parseProxyHeader(v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]), true)?.remoteAddress).toBe('192.0.2.1');
    expect(parseProxyHeader(v4([198, 51, 100, 9], Command.LOCAL), true)?.remoteAddress).toBeUndefined();
  });
  test('partial headers ask for more bytes; a stream without a header passes as is', () => {
    const whole = v4([198, 51, 100, 9]);
    for (const n of [1, 5, 12, 15, whole.length - 1]) expect(parseProxyHeader(whole.subarray(0, n), true)).toBeUndefined();
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4'), true)).toBeUndefined();
    expect(parseProxyHeader(mqtt, false)).toEqual({ remoteAddress: undefined, head: mqtt });
  });
  test('untrusted peer, oversize, malformed: ProxyHeaderError', () => {
    expect(() => parseProxyHeader(v1('PROXY TCP4 203.0.113.7 10.0.0.1 1 2'), false)).toThrow(/not in trustedProxies/);
    expect(() => parseProxyHeader(v4([1, 2, 3, 4]), false)).toThrow(ProxyHeaderError);
    expect(() => parseProxyHeader(Buffer.from(`PROXY TCP4 ${'9'.repeat(MAX_V1_HEADER)}`), true)).toThrow(/longer than 107/);
    const big = Buffer.concat([v4([1, 2, 3, 4]).subarray(0, 14), Buffer.from([0xff, 0xff])]);
    expect(() => parseProxyHeader(big, true)).toThrow(new RegExp(`over ${MAX_V2_HEADER}`));
    expect(() => parseProxyHeader(v1('PROXY TCP4 not-an-ip 10.0.0.1 1 2'), true)).toThrow(/malformed PROXY v1/);
    expect(() => parseProxyHeader(v1('PROXY TCP4 2001:db8::1 10.0.0.1 1 2'), true)).toThrow(/malformed PROXY v1/);
    expect(() => parseProxyHeader(v1('PROXY TCP9 1.2.3.4 10.0.0.1 1 2'), true)).toThrow(/malformed PROXY v1/);
    const badVersion = v4([1, 2, 3, 4]);
    badVersion[12] = 0x31;
    expect(() => parseProxyHeader(badVersion, true)).toThrow(/malformed PROXY v2/);
  });
});

describe('a gate with tcp.proxyProtocol', () => {
  let trusted: Harness;
  let untrusted: Harness;
  beforeAll(async () => {
    trusted = await startGate({ tcp: { port: 0, host: '127.0.0.1', proxyProtocol: true }, trustedProxies: ['127.0.0.1'] });
    untrusted = await startGate({ tcp: { port: 0, host: '127.0.0.1', proxyProtocol: true }, trustedProxies: ['10.9.9.9'] });
  });
  afterAll(async () => {
    await trusted?.stop();
    await untrusted?.stop();
  });

  /** Opens a socket, writes the chunks one by one, resolves with the first bytes the gate answers. */
  async function send(h: Harness, chunks: Buffer[]): Promise<{ socket: Socket; answer: Promise<Buffer | 'closed'> }> {
    const socket = connect(h.tcpPort, '127.0.0.1');
    await once(socket, 'connect');
    const answer = new Promise<Buffer | 'closed'>((resolve) => {
      socket.once('data', resolve);
      socket.once('close', () => resolve('closed'));
    });
    for (const c of chunks) {
      socket.write(c);
      await new Promise((r) => setImmediate(r));
    }
    return { socket, answer };
  }
  const CONNACK_OK = Buffer.from([0x20, 0x02, 0x00, 0x00]);

  test.each([
    ['v1 in one write', [Buffer.concat([v1('PROXY TCP4 203.0.113.7 10.0.0.1 56324 3563'), CONNECT('p1')])], '203.0.113.7'],
    [
      'v1 split across writes',
      [Buffer.from('PROXY TCP4 203.0.1'), Buffer.from('13.8 10.0.0.1 5 3563\r'), Buffer.concat([Buffer.from('\n'), CONNECT('p2')])],
      '203.0.113.8',
    ],
    ['v2 IPv4 then CONNECT', [v4([198, 51, 100, 9]), CONNECT('p3')], '198.51.100.9'],
    ['v2 LOCAL: the peer address', [Buffer.concat([v4([198, 51, 100, 9], Command.LOCAL), CONNECT('p4')])], '127.0.0.1'],
    ['no header at all', [CONNECT('p5')], '127.0.0.1'],
  ])('trusted peer, %s: the session ip is the client behind the proxy', async (_name, chunks, ip) => {
    const session = nextSession(trusted);
    const { socket, answer } = await send(trusted, chunks);
    expect(await within(answer, 3000, 'CONNACK')).toEqual(CONNACK_OK);
    expect((await within(session, 3000, 'connect event')).ip).toBe(ip);
    socket.destroy();
  });

  test.each([
    ['v1', [Buffer.concat([v1('PROXY TCP4 203.0.113.7 10.0.0.1 56324 3563'), CONNECT('u1')])]],
    ['v2', [Buffer.concat([v4([198, 51, 100, 9]), CONNECT('u2')])]],
  ])('untrusted peer with a %s header: closed, no session', async (_name, chunks) => {
    let sessions = 0;
    const count = () => sessions++;
    untrusted.gate.on('connect', count);
    const { answer } = await send(untrusted, chunks);
    expect(await within(answer, 3000, 'close')).toBe('closed');
    untrusted.gate.off('connect', count);
    expect(sessions).toBe(0);
  });

  test('untrusted peer without a header: accepted with its own address', async () => {
    const session = nextSession(untrusted);
    const { socket, answer } = await send(untrusted, [CONNECT('u3')]);
    expect(await within(answer, 3000, 'CONNACK')).toEqual(CONNACK_OK);
    expect((await session).ip).toBe('127.0.0.1');
    socket.destroy();
  });

  test('trusted peer, malformed or endless header: closed', async () => {
    const bad = await send(trusted, [v1('PROXY TCP4 999.1.1.1 10.0.0.1 1 2')]);
    expect(await within(bad.answer, 3000, 'close')).toBe('closed');
    const endless = await send(trusted, [Buffer.from(`PROXY TCP4 ${'1'.repeat(200)}`)]);
    expect(await within(endless.answer, 3000, 'close')).toBe('closed');
  });
});
