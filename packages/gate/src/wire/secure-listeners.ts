import type { Server as HttpsServer } from 'node:https';
import type { Server as NetServer } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import { listenTls, loadCredentials, serverTlsOptions, TlsReloader, type TlsListenOptions, type TlsReload } from './tls';
import { listenWebSocket } from './websocket';
import type { Wire, WireSink } from './wire';

/** The gate's TLS listeners (mqtts, wss) and what reloads their certificates. */
export interface SecureListeners {
  mqtts: TlsServer | undefined;
  wss: HttpsServer | undefined;
  reloader: TlsReloader;
  servers(): NetServer[];
}

export interface SecureListenConfig {
  mqtts: TlsListenOptions | false;
  wss: TlsListenOptions | false;
  /** Largest WebSocket message, bytes (see webSocketMessageBound). */
  maxPayload: number;
  trustedProxies: ReadonlySet<string>;
  /** ms a connection has to send a PROXY header (mqtts with `proxyProtocol`; the gate's connectTimeout). Default 10 000. */
  headerTimeout?: number;
  /** ms from TCP accept to CONNECT (the gate's connectTimeout), upgrade and handshake included. */
  connectTimeout?: number;
  /** Asked for each mqtts / wss socket before its handshake / upgrade (see WebSocketListenOptions.admitSocket). */
  admitSocket?: (ip: string) => (() => void) | undefined;
}

/**
 * Opens the TLS listeners that are configured (none: both undefined).
 * @throws Error when a PEM file cannot be read or a port cannot be bound (what was opened is closed).
 */
export async function openSecureListeners(
  o: SecureListenConfig,
  accept: (wire: Wire) => WireSink,
  report: (r: TlsReload) => void,
): Promise<SecureListeners> {
  let mqtts: TlsServer | undefined;
  let wss: HttpsServer | undefined;
  try {
    if (o.mqtts)
      mqtts = await listenTls(o.mqtts, accept, {
        trustedProxies: o.trustedProxies,
        headerTimeout: o.headerTimeout ?? 10_000,
        admitSocket: o.admitSocket,
      });
    if (o.wss) {
      const tls = serverTlsOptions(o.wss, await loadCredentials(o.wss, true), false);
      const ws = {
        ...o.wss,
        maxPayload: o.maxPayload,
        trustedProxies: o.trustedProxies,
        tls,
        connectTimeout: o.connectTimeout,
        admitSocket: o.admitSocket,
      };
      wss = (await listenWebSocket(ws, accept)) as HttpsServer;
    }
  } catch (err) {
    mqtts?.close();
    throw err;
  }
  const listeners = [];
  if (mqtts && o.mqtts) listeners.push({ name: 'mqtts' as const, options: o.mqtts, server: mqtts });
  if (wss && o.wss) listeners.push({ name: 'wss' as const, options: o.wss, server: wss });
  return {
    mqtts,
    wss,
    reloader: new TlsReloader(listeners, report),
    servers: () => [mqtts, wss].filter((s): s is TlsServer | HttpsServer => s !== undefined),
  };
}
