import { isIP, type Socket } from 'node:net';
import { Command, IPv4ProxyAddress, IPv6ProxyAddress, V1ProxyProtocol, V2ProxyProtocol } from 'proxy-protocol-js';
import { normalizeIp } from './remote-address';

/** A v1 header is at most 107 bytes, CRLF included (PROXY protocol spec §2.1). */
export const MAX_V1_HEADER = 107;
/** Largest v2 header accepted, bytes (16 fixed + addresses + TLVs); larger closes the connection. */
export const MAX_V2_HEADER = 2048;

const V1_PREFIX = Buffer.from('PROXY ');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** What a PROXY header said: the client's address, and the bytes after the header. */
export interface ProxyHeaderResult {
  /** The client's address, or undefined to keep the socket peer's (LOCAL, UNKNOWN, AF_UNIX). */
  remoteAddress: string | undefined;
  /** Bytes read past the header (the start of the MQTT stream). */
  head: Buffer;
}

/** Thrown for a header that is malformed, too long, or sent by a peer that is not a trusted proxy. */
export class ProxyHeaderError extends Error {}

/** True while `buf` could still become (or is) the start of `sig`. */
function startsLike(buf: Buffer, sig: Buffer): boolean {
  const n = Math.min(buf.length, sig.length);
  return buf.subarray(0, n).equals(sig.subarray(0, n));
}

/**
 * Parses the start of a stream. Returns undefined while more bytes are needed, a result when
 * the header is whole (or when the stream does not start with one: then `head` is all of it
 * and the address is the peer's), and throws ProxyHeaderError otherwise.
 * @param trusted whether the socket peer is a trusted proxy; a header from any other peer throws.
 */
export function parseProxyHeader(buf: Buffer, trusted: boolean): ProxyHeaderResult | undefined {
  const v1 = startsLike(buf, V1_PREFIX);
  const v2 = startsLike(buf, V2_SIGNATURE);
  if (!v1 && !v2) return { remoteAddress: undefined, head: buf };
  if (buf.length < (v1 ? V1_PREFIX.length : V2_SIGNATURE.length)) return undefined;
  if (!trusted) throw new ProxyHeaderError('PROXY header from a peer that is not in trustedProxies');
  return v1 ? parseV1(buf) : parseV2(buf);
}

function parseV1(buf: Buffer): ProxyHeaderResult | undefined {
  const end = buf.subarray(0, MAX_V1_HEADER).indexOf('\r\n');
  if (end < 0) {
    if (buf.length >= MAX_V1_HEADER) throw new ProxyHeaderError(`PROXY v1 header longer than ${MAX_V1_HEADER} bytes`);
    return undefined;
  }
  const line = buf.toString('latin1', 0, end + 2);
  const head = buf.subarray(end + 2);
  if (line.startsWith('PROXY UNKNOWN')) return { remoteAddress: undefined, head };
  let parsed: V1ProxyProtocol;
  try {
    parsed = V1ProxyProtocol.parse(line);
  } catch {
    throw new ProxyHeaderError(`malformed PROXY v1 header ${JSON.stringify(line.trim())}`);
  }
  const ip = parsed.source.ipAddress;
  const family = isIP(ip);
  if (family === 0 || (parsed.inetProtocol === 'TCP4') !== (family === 4) || parsed.source.port > 65535) {
    throw new ProxyHeaderError(`malformed PROXY v1 header ${JSON.stringify(line.trim())}`);
  }
  return { remoteAddress: normalizeIp(ip), head };
}

function parseV2(buf: Buffer): ProxyHeaderResult | undefined {
  if (buf.length < 16) return undefined;
  const total = 16 + buf.readUInt16BE(14);
  if (total > MAX_V2_HEADER) throw new ProxyHeaderError(`PROXY v2 header of ${total} bytes, over ${MAX_V2_HEADER}`);
  if (buf.length < total) return undefined;
  let parsed: V2ProxyProtocol;
  try {
    parsed = V2ProxyProtocol.parse(buf.subarray(0, total));
  } catch (err) {
    throw new ProxyHeaderError(`malformed PROXY v2 header: ${(err as Error).message}`);
  }
  const head = buf.subarray(total);
  const a = parsed.proxyAddress;
  if (parsed.command !== Command.PROXY) return { remoteAddress: undefined, head }; // LOCAL: the proxy's own health check
  if (a instanceof IPv4ProxyAddress) return { remoteAddress: a.sourceAddress.address.join('.'), head };
  if (a instanceof IPv6ProxyAddress) return { remoteAddress: formatIPv6(a.sourceAddress.address), head };
  return { remoteAddress: undefined, head };
}

function formatIPv6(bytes: readonly number[]): string {
  const b = Buffer.from(bytes);
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Canonical short form (RFC 5952) through the URL parser.
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

/**
 * Reads a PROXY v1/v2 header off a new socket before MQTT: `done` gets the client's address
 * and the bytes after the header, synchronously with the data event that completed it (no
 * bytes are lost). A stream without a header is passed on as is. The socket is destroyed
 * (and `done` never called) for a malformed or oversize header, a header from a peer that
 * is not a trusted proxy, or no first bytes within `timeout` ms.
 */
export function readProxyHeader(
  socket: Socket,
  trustedProxies: ReadonlySet<string>,
  timeout: number,
  done: (result: ProxyHeaderResult) => void,
): void {
  const trusted = trustedProxies.has(normalizeIp(socket.remoteAddress));
  let buf: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), timeout);
  timer.unref();
  const finish = () => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', onError);
  };
  const onError = () => {
    finish();
    socket.destroy();
  };
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let result: ProxyHeaderResult | undefined;
    try {
      result = parseProxyHeader(buf, trusted);
    } catch {
      finish();
      socket.destroy();
      return;
    }
    if (!result) return;
    finish();
    done(result);
  };
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', () => clearTimeout(timer));
}
