import type { IClientOptions } from 'mqtt';
import type { GateError } from './errors.js';

/** Exponential backoff between reconnection attempts: `min(maxDelay, initialDelay · factor^n)`, less up to `jitter` of it at random. */
export interface ReconnectOptions {
  /** ms before the first attempt after a drop. Default 500. */
  initialDelay?: number;
  /** ms the delay never exceeds. Default 30 000. */
  maxDelay?: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
  /** Share of each delay taken off at random, 0 to 1 (so clients dropped together do not come back together). Default 0.5. */
  jitter?: number;
  /** Attempts after one drop before giving up (`close` event, queued requests rejected). Default Infinity. */
  maxAttempts?: number;
}

/** What `onSessionLost` is told: the resume was refused or impossible, the app should log in again. */
export interface SessionLostInfo {
  /** The gate's refusal (e.g. `resume token expired or already used: log in again`, `BANNED: the user is banned`), or why no resume was tried. */
  reason: string;
  /** The refusal as a GateError, when the gate answered one. */
  error?: GateError;
}

/** Options of {@link connect}. Every default is in {@link DEFAULTS}. */
export interface ConnectOptions {
  /** MQTT protocol level: 5 (default; Response Topic + Correlation Data), 4 (3.1.1, mqant's `module/HD_x/msgid` form) or 3 (3.1). */
  protocolVersion?: 3 | 4 | 5;
  /** MQTT client id. Default: `mqgate-sdk-` and 16 random hex digits; kept across reconnections. */
  clientId?: string;
  /** Default deadline of a request, ms. Default 10 000 (mqant's RPC timeout). */
  timeout?: number;
  /** MQTT keepalive, s (the gate closes a silent connection after 1.5×, MQTT-3.1.2-24). Default 30. */
  keepalive?: number;
  /** ms to wait for a CONNACK. Default 10 000. */
  connectTimeout?: number;
  /** Reconnect after a dropped connection (not after a kick or `close()`); `false` turns it off. */
  reconnect?: ReconnectOptions | false;
  /** Resume the dropped session on reconnect (gate/HD_resume with the last `gate/session` token; with a JWT, Clean Session 0 at CONNECT). Default true. */
  resume?: boolean;
  /**
   * MQTT 5 Session Expiry Interval, s, sent when resuming is on: the gate keeps an MQTT 5
   * session after a drop only with it above 0 (MQTT 5.0 §3.1.2.11.2), capped by its
   * `resumeWindow`. Default 120. `close()` sets it to 0 at DISCONNECT, so a closed session ends.
   */
  sessionExpiry?: number;
  /** Called when a resume is refused or cannot be tried; the app logs in again here (requests made inside it go out at once). */
  onSessionLost?: (info: SessionLostInfo) => void | Promise<void>;
  /** A JWT sent as the CONNECT password (the gate's `jwt` option). */
  token?: string;
  /** Called for the JWT at every (re)connect and before the current one expires (then sent on gate/HD_refresh). Wins over `token`. */
  getToken?: () => string | Promise<string>;
  /** ms before the JWT's `exp` at which `getToken` is called for a refresh. Default 30 000. */
  refreshBefore?: number;
  /** CONNECT User Name sent with a token (MQTT 3.1.1 wants one with a password, MQTT-3.1.2-22). Default `jwt`. */
  username?: string;
  /** CONNECT password when no token is used (an `authenticate` hook's credentials). */
  password?: string;
  /** Requests waiting for a reply or a connection at once; past it `request` rejects with RangeError. Default 10 000. */
  maxPending?: number;
  /** Extra MQTT.js options (TLS, `wsOptions`, …), under those the SDK sets. */
  mqtt?: IClientOptions;
}

/** Options of one request. */
export interface RequestOptions {
  /** Deadline, ms, counted from the call (waiting for a connection included). Default: the client's `timeout`. */
  timeout?: number;
  /**
   * Send it again on the next connection if the connection drops before the reply (for
   * idempotent calls only: the first may have run). Default false: it rejects with
   * ConnectionLostError.
   */
  retry?: boolean;
}

/** The defaults of every option, in one place. */
export const DEFAULTS = {
  protocolVersion: 5,
  timeout: 10_000,
  keepalive: 30,
  connectTimeout: 10_000,
  reconnect: { initialDelay: 500, maxDelay: 30_000, factor: 2, jitter: 0.5, maxAttempts: Infinity },
  resume: true,
  sessionExpiry: 120,
  refreshBefore: 30_000,
  username: 'jwt',
  maxPending: 10_000,
} as const;

/** The reconnection options with defaults filled in; RangeError for a value out of bounds. */
export function reconnectOptions(o: ReconnectOptions | false | undefined): Required<ReconnectOptions> | false {
  if (o === false) return false;
  const r = { ...DEFAULTS.reconnect, ...o };
  if (!(r.initialDelay >= 0) || !(r.maxDelay >= r.initialDelay)) throw new RangeError('reconnect: need 0 ≤ initialDelay ≤ maxDelay (ms)');
  if (!(r.factor >= 1)) throw new RangeError('reconnect.factor must be ≥ 1');
  if (!(r.jitter >= 0 && r.jitter <= 1)) throw new RangeError('reconnect.jitter must be from 0 to 1');
  if (!(r.maxAttempts >= 1)) throw new RangeError('reconnect.maxAttempts must be ≥ 1');
  return r;
}

/** ms before reconnection attempt `n` (0-based): exponential, bounded by maxDelay, with jitter. */
export function backoffDelay(r: Required<ReconnectOptions>, n: number, random: () => number = Math.random): number {
  const base = Math.min(r.maxDelay, r.initialDelay * r.factor ** n);
  return Math.round(base * (1 - r.jitter * random()));
}
