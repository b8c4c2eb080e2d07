import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import { createServer, createSecureContext, type SecureContextOptions, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { readProxyHeader } from './proxy-protocol';
import { listenOn, wireSocket } from './tcp';
import type { PemSource, TlsListenOptions } from './options';
import type { ClientCertificate, Wire, WireSink } from './wire';

export type { PemSource, TlsListenOptions } from './options';

/** Who may send a PROXY header to a TLS listener, and how long it has to. */
export interface TlsProxyPolicy {
  trustedProxies: ReadonlySet<string>;
  /** ms a connection has to send its header; also the TLS handshake's bound (the gate's connectTimeout). */
  headerTimeout: number;
  /**
   * Asked for each TCP socket before its handshake (the gate's door, as for WebSocket
   * sockets before their upgrade): undefined destroys it; else called once it is through
   * the handshake or closed.
   */
  admitSocket?: (ip: string) => (() => void) | undefined;
}

const ADMITTED = Symbol('admitted before the handshake');
interface CountedSocket extends Socket {
  [ADMITTED]?: () => void;
}
function endAdmitted(this: CountedSocket): void {
  this[ADMITTED]?.();
}

/**
 * ALPN protocol chosen on mqtts when the client offers it (IANA registry: "mqtt"). A client
 * offering none is accepted without one; a client offering only others (e.g. AWS IoT's
 * `x-amzn-mqtt-ca`) gets its first, and speaks MQTT all the same: Node would otherwise end
 * such a handshake with `no_application_protocol`.
 */
export const ALPN_PROTOCOLS = ['mqtt'];

function pickAlpn({ protocols }: { protocols: string[] }): string | undefined {
  // Node refuses the handshake when this returns undefined: take what the client offered.
  return protocols.find((p) => ALPN_PROTOCOLS.includes(p)) ?? protocols[0];
}

function paths(o: TlsListenOptions): string[] {
  const all = [o.key, o.cert, ...(o.ca === undefined ? [] : Array.isArray(o.ca) ? o.ca : [o.ca])];
  return all.filter((p): p is string => typeof p === 'string').map((p) => resolvePath(p));
}

/**
 * Reads the PEM files of a TLS listener (sync at start, async on reload) into the options of
 * a secure context, and checks them by building one.
 * @throws Error naming the file when one cannot be read, or when key and certificate do not make a context.
 */
export async function loadCredentials(o: TlsListenOptions, sync = false): Promise<SecureContextOptions> {
  const read = async (p: PemSource): Promise<Buffer> => {
    if (typeof p !== 'string') return p;
    try {
      return sync ? readFileSync(p) : await readFile(p);
    } catch (err) {
      throw new Error(`cannot read TLS file ${p}: ${(err as Error).message}`);
    }
  };
  const ca = o.ca === undefined ? undefined : await Promise.all((Array.isArray(o.ca) ? o.ca : [o.ca]).map(read));
  const ctx: SecureContextOptions = { key: await read(o.key), cert: await read(o.cert), ca, passphrase: o.passphrase };
  try {
    createSecureContext(ctx);
  } catch (err) {
    throw new Error(`TLS key/certificate of port ${o.port} rejected: ${(err as Error).message}`);
  }
  return ctx;
}

/** The subject and fingerprint of a socket's client certificate, when it was verified. */
export function verifiedCertificate(socket: TLSSocket): ClientCertificate | undefined {
  if (!socket.authorized) return undefined;
  const c = socket.getPeerCertificate();
  if (!c || !c.subject) return undefined;
  return {
    subject: { ...(c.subject as unknown as Record<string, string>) },
    issuer: { ...(c.issuer as unknown as Record<string, string>) },
    fingerprint256: c.fingerprint256,
    serialNumber: c.serialNumber,
  };
}

/**
 * Server options of a TLS listener from its loaded credentials. `alpn`: choose `mqtt` when
 * offered (mqtts); off for wss, whose browsers offer `h2` / `http/1.1` and would be refused.
 */
export function serverTlsOptions(o: TlsListenOptions, ctx: SecureContextOptions, alpn = true): SecureContextOptions & Record<string, unknown> {
  return {
    ...ctx,
    requestCert: o.requestCert ?? false,
    rejectUnauthorized: o.requestCert ? (o.rejectUnauthorized ?? true) : false,
    ...(alpn ? { ALPNCallback: pickAlpn } : {}),
  };
}

/**
 * MQTT over TLS (mqtts, conventionally port 8883): every TLS socket, once its handshake is
 * done, is read like a TCP one.
 * @throws Error when the files cannot be read or the port cannot be bound.
 */
export async function listenTls(o: TlsListenOptions, accept: (wire: Wire) => WireSink, proxy?: TlsProxyPolicy): Promise<TlsServer> {
  const ctx = await loadCredentials(o, true);
  // A handshake that never completes is cut at the gate's connectTimeout, not Node's 120 s.
  const server = createServer({ ...serverTlsOptions(o, ctx), handshakeTimeout: proxy?.headerTimeout ?? 120_000 }, (socket) => {
    (socket as TLSSocket & { _parent?: CountedSocket })._parent?.[ADMITTED]?.(); // counted from now on as a connection
    socket.setNoDelay(true);
    const remoteAddress = (socket as TLSSocket & { _parent?: ProxiedSocket })._parent?.[PROXIED_ADDRESS];
    wireSocket(socket, accept, { secure: true, certificate: verifiedCertificate(socket), remoteAddress });
  });
  // A failed handshake (bad client certificate, plain MQTT on the TLS port) only loses that socket.
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  if (o.proxyProtocol && proxy) readProxyHeaderFirst(server, proxy);
  const admitSocket = proxy?.admitSocket;
  if (admitSocket) {
    server.on('connection', (socket: CountedSocket) => {
      const done = admitSocket(socket.remoteAddress ?? '');
      if (!done) return void socket.destroy();
      socket[ADMITTED] = done;
      socket.once('close', endAdmitted);
    });
  }
  return listenOn(server, o);
}

const PROXIED_ADDRESS = Symbol('proxied address');
interface ProxiedSocket extends Socket {
  [PROXIED_ADDRESS]?: string;
}

/**
 * Puts a PROXY header read in front of the TLS handshake: Node's own connection listener
 * (which wraps the socket in a TLSSocket) runs once the header is read, with the bytes past
 * it pushed back (a TLSSocket takes the bytes its socket has buffered first). The address the
 * header names is left on the raw socket, which the TLSSocket keeps as `_parent`.
 */
function readProxyHeaderFirst(server: TlsServer, proxy: TlsProxyPolicy): void {
  const [handshake] = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeListener('connection', handshake);
  server.on('connection', (socket: ProxiedSocket) => {
    readProxyHeader(socket, proxy.trustedProxies, proxy.headerTimeout, (found) => {
      if (socket.destroyed) return;
      socket.pause();
      socket[PROXIED_ADDRESS] = found.remoteAddress;
      if (found.head && found.head.length > 0) socket.unshift(found.head);
      handshake.call(server, socket);
    });
  });
}

/** What a reload of one listener did. */
export interface TlsReload {
  listener: 'mqtts' | 'wss';
  /** Set when the new files were not taken (the old certificate stays in use). */
  error?: string;
}

/**
 * Keeps the certificates of the TLS listeners current: `reload()` (on SIGHUP, say) re-reads
 * every listener's files and swaps them in with `setSecureContext`; connections already open
 * keep their session, new handshakes get the new certificate. With `watch`, a change of a
 * file (written in place or renamed over) reloads after 100 ms of quiet.
 */
export class TlsReloader {
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly listeners: { name: 'mqtts' | 'wss'; options: TlsListenOptions; server: TlsServer | HttpsServer }[],
    private readonly report: (r: TlsReload) => void,
  ) {
    const folders = new Map<string, Set<string>>();
    for (const l of listeners) {
      if (l.options.watch === false) continue;
      for (const p of paths(l.options)) {
        const names = folders.get(dirname(p)) ?? new Set<string>();
        names.add(basename(p));
        folders.set(dirname(p), names);
      }
    }
    for (const [folder, names] of folders) {
      try {
        const w = watch(folder, { persistent: false }, (_event, file) => {
          if (file === null || names.has(String(file))) this.soon();
        });
        w.on('error', () => undefined);
        this.watchers.push(w);
      } catch {
        // a folder that cannot be watched: SIGHUP / reload() still work
      }
    }
  }

  private soon(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload(), 100);
    this.timer.unref();
  }

  /** Re-reads every listener's files; a listener whose new files fail keeps its old ones. */
  async reload(): Promise<TlsReload[]> {
    const results = await Promise.all(
      this.listeners.map(async (l): Promise<TlsReload> => {
        try {
          const ctx = await loadCredentials(l.options);
          l.server.setSecureContext(serverTlsOptions(l.options, ctx));
          return { listener: l.name };
        } catch (err) {
          return { listener: l.name, error: (err as Error).message };
        }
      }),
    );
    for (const r of results) this.report(r);
    return results;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
  }
}
