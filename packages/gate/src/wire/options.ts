// The listeners' options, defaults and resolver: which listeners run, where each listens and,
// for TLS, its key material. Imports nothing of the gate, so the listeners and the gate's
// options both import it without a cycle.

/** Where a listener binds. */
export interface ListenOptions {
  /** TCP port; 0 picks a free one (see `Gate.addresses()`). */
  port: number;
  /** Interface to bind. Default: all interfaces. */
  host?: string;
}

/** The TCP listener: a {@link ListenOptions} that may expect a PROXY protocol header. */
export interface TcpListenOptions extends ListenOptions {
  /**
   * Read a PROXY protocol v1 or v2 header (HAProxy, AWS NLB, nginx stream) before MQTT: the
   * session's address is the one the header names. Believed only from `trustedProxies`; a
   * header from any other peer closes the connection; a connection without one is taken
   * as is. Default false.
   */
  proxyProtocol?: boolean;
}

/** PEM material: a file path (read at start and on reload), or the PEM bytes themselves. */
export type PemSource = string | Buffer;

/** A TLS listener: where to listen, and its key, certificate and client-certificate policy. */
export interface TlsListenOptions extends ListenOptions {
  /** Private key, PEM (path or bytes). Required. */
  key: PemSource;
  /** Certificate chain, PEM (path or bytes). Required. */
  cert: PemSource;
  /** CA certificates that client certificates must chain to (with `requestCert`). Default: Node's bundled roots. */
  ca?: PemSource | PemSource[];
  /** Passphrase of an encrypted key. */
  passphrase?: string;
  /**
   * Ask clients for a certificate; its verified subject reaches the authenticate hook as
   * `ConnectInfo.certificate`. Default false.
   */
  requestCert?: boolean;
  /** With `requestCert`: refuse, in the handshake, clients without a valid certificate. Default true. */
  rejectUnauthorized?: boolean;
  /** Reload the PEM files when one changes (fs.watch on their folders). Default true (no effect for bytes). */
  watch?: boolean;
  /**
   * mqtts only: read a PROXY protocol v1 or v2 header before the TLS ClientHello (a TCP load
   * balancer that passes TLS through: HAProxy `send-proxy-v2` in `mode tcp`, AWS NLB), with
   * the same rules as `tcp.proxyProtocol`: believed only from `trustedProxies`, a header from
   * any other peer closes the connection, none is taken as is, bounded (v1 107 bytes, v2
   * 2 048 bytes) within `connectTimeout`. Default false. Ignored on wss.
   */
  proxyProtocol?: boolean;
}

/** The listeners: which ones run, where, and whose forwarded addresses are believed. Part of GateOptions; defaults in {@link LISTENER_DEFAULTS}. */
export interface ListenerOptions {
  /** MQTT over TCP listener, or `false` for none. Default `{ port: 3563 }` (mqant's convention). */
  tcp?: TcpListenOptions | false;
  /** MQTT over WebSocket listener (any path), or `false` for none. Default `{ port: 3653 }`. */
  websocket?: ListenOptions | false;
  /** MQTT over TLS listener (mqtts; port 8883 by convention), or `false` for none. Default false. */
  mqtts?: TlsListenOptions | false;
  /** MQTT over secure WebSocket listener (wss), or `false` for none. Default false. */
  wss?: TlsListenOptions | false;
  /** Peers whose `X-Forwarded-For` header is believed (exact IPs, IPv4-mapped forms included). Default none. */
  trustedProxies?: string[];
}

/** {@link ListenerOptions} resolved: every default applied, every value checked. */
export type ResolvedListenerOptions = Required<ListenerOptions>;

/** The defaults of {@link ListenerOptions}. */
export const LISTENER_DEFAULTS = {
  tcp: { port: 3563 } as ListenOptions,
  websocket: { port: 3653 } as ListenOptions,
  mqtts: false,
  wss: false,
  trustedProxies: [] as string[],
} as const;

/**
 * Fills in the defaults of {@link ListenerOptions}, copying what is given; each listener checks
 * its own values (ports, PEM material) when it opens.
 */
export function resolveListenerOptions(o: ListenerOptions): ResolvedListenerOptions {
  const D = LISTENER_DEFAULTS;
  return {
    tcp: o.tcp === undefined ? { ...D.tcp } : o.tcp,
    websocket: o.websocket === undefined ? { ...D.websocket } : o.websocket,
    mqtts: o.mqtts ? { ...o.mqtts } : D.mqtts,
    wss: o.wss ? { ...o.wss } : D.wss,
    trustedProxies: [...(o.trustedProxies ?? D.trustedProxies)],
  };
}
