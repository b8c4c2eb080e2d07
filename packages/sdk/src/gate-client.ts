import mqtt from 'mqtt';
import type { IClientOptions, IConnackPacket, IDisconnectPacket, IPublishPacket, MqttClient } from 'mqtt';
import { Emitter } from './emitter.js';
import { ConnectError, ConnectionLostError, GateError } from './errors.js';
import { DEFAULTS, backoffDelay, reconnectOptions, type ConnectOptions, type ReconnectOptions, type RequestOptions } from './options.js';
import { RequestTable, type Pending } from './requests.js';
import {
  KICK_TOPIC,
  REFRESH_ROUTE,
  RESUME_ROUTE,
  SESSION_TOPIC,
  decodePush,
  decodeReply,
  encodeBody,
  jwtExpiry,
  toBytes,
  topicMatches,
  utf8,
  type Body,
} from './wire.js';

/** Why the gate closed the connection on purpose: `gate/kick`'s reason, and at MQTT 5 the DISCONNECT's reason code (0x98 Administrative action, 0x8E Session taken over, 0x8B Server shutting down, 0xA0 token expired). */
export interface KickInfo {
  reason: string;
  reasonCode?: number;
}

/** The `gate/session` push: the single-use resume token of the logged-in session. `expiresAt`: ms since the epoch. */
export interface SessionToken {
  sessionId: string;
  userId: string;
  token: string;
  expiresAt: number;
}

/**
 * A resume that worked. Token resume (`via: 'token'`): the gate's counts; `replayed` pushes
 * follow, in their original order. At CONNECT (`via: 'connect'`, JWT): the gate sends no
 * counts, so `replayed` is the pushes that came before the new token and `recovered` / `lost` are null.
 */
export interface ResumedInfo {
  via: 'token' | 'connect';
  userId: string;
  sessionId: string;
  settings: Record<string, string> | undefined;
  recovered: boolean | null;
  replayed: number;
  lost: number | null;
}

/** A dropped connection: `reason` in words, `reasonCode` from an MQTT 5 DISCONNECT when one came. */
export interface OfflineInfo {
  reason: string;
  reasonCode?: number;
}

/** What push listeners get beside the decoded body. */
export interface PushMeta {
  topic: string;
  /** The raw payload. */
  payload: Uint8Array;
  qos: 0 | 1 | 2;
  /** MQTT 5 PUBLISH properties (User Properties, Content Type…), when any. */
  properties?: IPublishPacket['properties'];
}

/**
 * Called with a push's body (parsed JSON when the payload is JSON text, else the bytes).
 * A QoS 1 push is acknowledged (PUBACK) once the listener returned, or once its promise settled.
 */
export type PushListener = (body: unknown, meta: PushMeta) => void | Promise<void>;

/** The lifecycle events and their arguments. Any name with a `/` (or `#`) is a push topic filter instead. */
export interface GateEvents {
  /** The gate closed the connection on purpose (`gate/kick`); the client does not reconnect. */
  kick: (info: KickInfo) => void;
  /** A dropped session came back after a reconnect. */
  resumed: (info: ResumedInfo) => void;
  /** A connection is up (`reconnected` false for the first), before any resume. */
  online: (info: { reconnected: boolean; sessionPresent: boolean }) => void;
  /** The connection dropped; reconnection follows unless turned off. */
  offline: (info: OfflineInfo) => void;
  /** The next reconnection attempt (1-based) starts in `delay` ms. */
  reconnecting: (info: { attempt: number; delay: number }) => void;
  /** A resume was refused or could not be tried (after `onSessionLost` ran). */
  sessionLost: (info: { reason: string }) => void;
  /** The JWT was replaced on gate/HD_refresh; `exp` as the gate read it (s since the epoch, null: none). */
  refreshed: (info: { exp: number | null }) => void;
  /** A new `gate/session` token. */
  session: (token: SessionToken) => void;
  /** The client is closed for good (`close()`, a kick, reconnection given up). */
  close: (info: { reason: string }) => void;
  /** A failed reconnection attempt, a refused refresh, a listener that threw. */
  error: (err: Error) => void;
}

type State = 'connecting' | 'resuming' | 'ready' | 'offline' | 'closed';

/** CONNACK codes after which reconnecting cannot help: 3.1.1 return code 5, MQTT 5 0x87 Not authorized, 0x8A Banned. */
const FATAL_CONNACK = new Set([5, 0x87, 0x8a]);
/** Longest delay setTimeout takes (2^31 − 1 ms). */
const MAX_TIMER = 2_147_483_647;

/**
 * A connection to an mqgate (or mqant) gate, for an end user's app. Made by {@link connect}.
 * Requests are promises of their `Result`; pushes reach `on(topic)` listeners with no
 * SUBSCRIBE; dropped connections come back with backoff and the session resumes.
 */
export class GateClient extends Emitter {
  private client: MqttClient | undefined;
  private state: State = 'connecting';
  private seq = 0;
  private readonly requests: RequestTable;
  private readonly pushListeners: Array<{ filter: string; fn: PushListener }> = [];
  private readonly v5: boolean;
  private readonly replyTopic: string;
  private readonly reconnect: Required<ReconnectOptions> | false;
  private readonly jwt: boolean;
  private currentToken: string | undefined;
  private sessionToken: SessionToken | undefined;
  /** A session was bound on the last connection (a `gate/session` token came), so a drop has something to resume. */
  private hadSession = false;
  private kick: KickInfo | undefined;
  private serverDisconnect: OfflineInfo | undefined;
  private attempt = 0;
  private everConnected = false;
  /** While `onSessionLost` runs, its requests go out before the queued ones. */
  private hookOpen = false;
  /** Counting replayed pushes of a resume at CONNECT until the new token. */
  private connectResume: { replayed: number } | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  readonly clientId: string;
  private readonly opts: ConnectOptions;

  /** Use {@link connect}. */
  constructor(
    readonly url: string,
    options: ConnectOptions = {},
  ) {
    super();
    this.opts = options;
    const v = options.protocolVersion ?? DEFAULTS.protocolVersion;
    if (v !== 3 && v !== 4 && v !== 5) throw new RangeError(`protocolVersion must be 3, 4 or 5, got ${String(v)}`);
    this.v5 = v === 5;
    this.clientId = options.clientId ?? `mqgate-sdk-${randomHex(16)}`;
    this.replyTopic = `sdk/reply/${this.clientId.replace(/[+#/]/g, '_')}`;
    this.reconnect = reconnectOptions(options.reconnect);
    this.jwt = options.token !== undefined || options.getToken !== undefined;
    this.currentToken = options.token;
    this.requests = new RequestTable(options.maxPending ?? DEFAULTS.maxPending);
    for (const k of ['timeout', 'maxPending', 'sessionExpiry', 'refreshBefore', 'keepalive', 'connectTimeout'] as const) {
      const n = options[k];
      if (n !== undefined && !(Number.isFinite(n) && n >= 0)) throw new RangeError(`${k} must be a number ≥ 0, got ${String(n)}`);
    }
  }

  /** The MQTT.js client of the current connection (undefined between connections): for what the SDK does not cover. */
  get mqtt(): MqttClient | undefined {
    return this.client;
  }

  /** True when requests go out at once (connected, and any resume done). */
  get connected(): boolean {
    return this.state === 'ready';
  }

  /** The logged-in session as the last `gate/session` push told it, without its token; undefined for a guest. */
  get session(): { userId: string; sessionId: string; expiresAt: number } | undefined {
    const s = this.sessionToken;
    return s && { userId: s.userId, sessionId: s.sessionId, expiresAt: s.expiresAt };
  }

  /** Opens the first connection. @throws ConnectError when it fails (no retry for the first one). */
  async start(): Promise<this> {
    try {
      await this.open();
    } catch (err) {
      this.finish((err as Error).message);
      throw err;
    }
    return this;
  }

  /**
   * Calls `route` (`module/HD_handler`, optionally `module@serverId/HD_handler`) with `body`
   * and resolves with the reply's `Result` (a Uint8Array for a raw bytes result).
   * Made while reconnecting, it waits for the connection (within its timeout).
   * @throws GateError when the reply's `Error` is set; TimeoutError after `timeout` ms;
   *   ConnectionLostError when the connection drops before the reply (unless `retry`), or
   *   the client is closed; RangeError past `maxPending` requests; TypeError for a route
   *   with a wildcard or fewer than two levels.
   */
  request<T = unknown>(route: string, body?: Body, options: RequestOptions = {}): Promise<T> {
    return this.enqueue(route, encodeBody(body), options) as Promise<T>;
  }

  /**
   * Sends `body` to `route` with no reply asked (mqant's notify: a topic without msgid).
   * Resolves once handed to the connection; waits for one (within `timeout`) while reconnecting.
   * @throws ConnectionLostError when the client is closed; TimeoutError when no connection came in time.
   */
  async notify(route: string, body?: Body, options: { timeout?: number } = {}): Promise<void> {
    checkRoute(route);
    const payload = encodeBody(body);
    if (this.state === 'closed') throw new ConnectionLostError(route, 'closed by the client');
    if (!this.canSend()) await this.whenReady(route, options.timeout ?? this.opts.timeout ?? DEFAULTS.timeout);
    this.client!.publish(route, payload as string, { qos: 0 });
  }

  /** Listens to a push topic (an exact topic or an MQTT filter with `+` / `#`), or to a lifecycle event ({@link GateEvents}). */
  on<E extends keyof GateEvents>(event: E, listener: GateEvents[E]): this;
  on(topic: string, listener: PushListener): this;
  on(name: string, listener: (...args: never[]) => unknown): this {
    if (isTopic(name)) this.pushListeners.push({ filter: name, fn: listener as PushListener });
    else this.addListener(name, listener);
    return this;
  }

  /** Removes a listener added with {@link on}. */
  off<E extends keyof GateEvents>(event: E, listener: GateEvents[E]): this;
  off(topic: string, listener: PushListener): this;
  off(name: string, listener: (...args: never[]) => unknown): this {
    if (isTopic(name)) {
      const i = this.pushListeners.findIndex((l) => l.filter === name && l.fn === listener);
      if (i >= 0) this.pushListeners.splice(i, 1);
    } else this.removeListener(name, listener);
    return this;
  }

  /** Resolves with the next push on `topic` (its decoded body), or the next event's first argument. */
  once<T = unknown>(name: string): Promise<T> {
    return new Promise((resolve) => {
      const fn = (v: unknown) => {
        this.off(name, fn);
        resolve(v as T);
      };
      this.on(name, fn);
    });
  }

  /**
   * Replaces the connection's JWT on `gate/HD_refresh` (done by itself before expiry when
   * `getToken` is given). Resolves with the gate's `{exp}`.
   * @throws GateError (`INVALID_TOKEN: …`, `USER_MISMATCH: …`, `RATE_LIMITED: …`).
   */
  async refresh(token?: string): Promise<{ exp: number | null }> {
    const next = token ?? (await this.opts.getToken?.());
    if (next === undefined) throw new TypeError('refresh needs a token, or the getToken option');
    const result = await this.request<{ exp: number | null }>(REFRESH_ROUTE, { token: next });
    this.currentToken = next;
    this.scheduleRefresh();
    this.emit('refreshed', result);
    return result;
  }

  /**
   * Closes for good: requests still waiting reject with ConnectionLostError, the session
   * ends on the gate (MQTT 5: DISCONNECT with Session Expiry Interval 0).
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const c = this.client;
    this.finish('closed by the client');
    if (!c || !c.connected) {
      c?.end(true);
      return;
    }
    const keep = this.v5 && this.resumeOn();
    await new Promise<void>((resolve) => c.end(false, keep ? { properties: { sessionExpiryInterval: 0 } } : {}, () => resolve()));
  }

  // ── requests ────────────────────────────────────────────────────────────

  private enqueue(route: string, body: Uint8Array | string, options: RequestOptions): Promise<unknown> {
    return new Promise((resolve, reject) => {
      checkRoute(route);
      if (this.state === 'closed') return reject(new ConnectionLostError(route, 'closed by the client'));
      const p = this.requests.create(route, body, options.timeout ?? this.opts.timeout ?? DEFAULTS.timeout, options.retry === true, resolve, reject);
      if (this.canSend()) this.send(p);
      else this.requests.wait(p);
    });
  }

  private canSend(): boolean {
    return this.state === 'ready' || (this.hookOpen && this.state === 'resuming');
  }

  /** Resolves once requests can go out; rejects after `timeout` ms or when the client closes. */
  private whenReady(route: string, timeout: number): Promise<void> {
    return new Promise((resolve, reject) => this.requests.wait(this.requests.create(route, undefined, timeout, false, () => resolve(), reject)));
  }

  private send(p: Pending): void {
    if (p.body === undefined) return this.requests.release(p);
    const c = this.client!;
    const id = String(++this.seq);
    if (this.v5) {
      this.requests.sentAs(p, id);
      c.publish(p.route, p.body as string, {
        qos: 0,
        properties: { responseTopic: this.replyTopic, correlationData: toBytes(id) as Buffer },
      });
    } else {
      const topic = `${p.route}/${id}`;
      this.requests.sentAs(p, topic);
      c.publish(topic, p.body as string, { qos: 0 });
    }
  }

  /** Sends what waited for the connection, in order. */
  private flush(): void {
    for (const p of this.requests.takeWaiting()) this.send(p);
  }

  // ── connection lifecycle ────────────────────────────────────────────────

  private resumeOn(): boolean {
    return this.opts.resume ?? DEFAULTS.resume;
  }

  private async mqttOptions(): Promise<IClientOptions> {
    const o = this.opts;
    if (o.getToken) this.currentToken = await o.getToken();
    const v = o.protocolVersion ?? DEFAULTS.protocolVersion;
    const resume = this.resumeOn();
    const opts: IClientOptions = {
      ...o.mqtt,
      protocolVersion: v,
      protocolId: v === 3 ? 'MQIsdp' : 'MQTT',
      clientId: this.clientId,
      keepalive: o.keepalive ?? DEFAULTS.keepalive,
      connectTimeout: o.connectTimeout ?? DEFAULTS.connectTimeout,
      reconnectPeriod: 0,
      queueQoSZero: false,
      resubscribe: false,
      // With a JWT the gate resumes at CONNECT: Clean Session 0 and the same client id (docs/guides/resume.md, "Resume at CONNECT").
      clean: !(this.jwt && resume),
    };
    if (this.jwt) {
      opts.username = o.username ?? DEFAULTS.username;
      opts.password = this.currentToken;
    } else if (o.password !== undefined) {
      opts.username = o.username ?? DEFAULTS.username;
      opts.password = o.password;
    } else if (o.username !== undefined) opts.username = o.username;
    if (v === 5 && resume) opts.properties = { ...o.mqtt?.properties, sessionExpiryInterval: o.sessionExpiry ?? DEFAULTS.sessionExpiry };
    return opts;
  }

  /** One connection attempt; resolves on its CONNACK, rejects with ConnectError when it closes before one. */
  private async open(): Promise<void> {
    const opts = await this.mqttOptions();
    if (this.state === 'closed') return;
    const c = mqtt.connect(this.url, opts);
    this.client = c;
    this.kick = undefined;
    this.serverDisconnect = undefined;
    let error: Error | undefined;
    let acked = false;
    c.handleMessage = (packet, done) => this.onPublish(c, packet, done);
    return new Promise<void>((resolve, reject) => {
      c.on('connect', (ack: IConnackPacket) => {
        acked = true;
        resolve();
        this.onConnack(ack);
      });
      c.on('error', (err) => {
        error = err;
      });
      c.on('disconnect', (packet: IDisconnectPacket) => {
        this.serverDisconnect = {
          reason: packet.properties?.reasonString ?? `DISCONNECT 0x${(packet.reasonCode ?? 0).toString(16)}`,
          reasonCode: packet.reasonCode,
        };
      });
      c.on('close', () => {
        if (this.client !== c) return;
        c.end(true);
        if (!acked) {
          const code = (error as { code?: unknown } | undefined)?.code;
          reject(new ConnectError(error?.message ?? 'connection closed before CONNACK', typeof code === 'number' ? code : undefined));
        } else this.onClose();
      });
    });
  }

  private onConnack(ack: IConnackPacket): void {
    const reconnected = this.everConnected;
    this.everConnected = true;
    this.attempt = 0;
    const sessionPresent = ack.sessionPresent === true;
    this.emit('online', { reconnected, sessionPresent });
    this.scheduleRefresh();
    const dropped = this.hadSession;
    if (!reconnected || !dropped) return this.ready();
    if (!this.resumeOn()) return void this.lose('resume is off (resume: false)');
    if (this.jwt) {
      if (!sessionPresent) return void this.lose('the gate did not keep the session (CONNACK Session Present 0)');
      this.connectResume = { replayed: 0 };
      return this.ready(); // the session is bound at CONNECT: requests can go at once
    }
    const token = this.sessionToken?.token;
    if (token === undefined) return void this.lose('no resume token came on gate/session');
    // The token stays until the gate answers: a drop before the reply tries it again on the next connection.
    this.state = 'resuming';
    const resumed = (r: unknown) => {
      const res = r as { userId: string; sessionId: string; settings?: Record<string, string>; recovered: boolean; replayed: number; lost: number };
      this.hadSession = true;
      this.ready();
      this.emit('resumed', {
        via: 'token',
        userId: res.userId,
        sessionId: res.sessionId,
        settings: res.settings,
        recovered: res.recovered,
        replayed: res.replayed,
        lost: res.lost,
      } satisfies ResumedInfo);
    };
    const refused = (err: Error) => {
      if (err instanceof ConnectionLostError) return; // the next connection tries the same token
      void this.lose(err.message, err instanceof GateError ? err : undefined);
    };
    const timeout = this.opts.timeout ?? DEFAULTS.timeout;
    this.send(this.requests.create(RESUME_ROUTE, JSON.stringify({ token }), timeout, false, resumed, refused));
  }

  private ready(): void {
    if (this.state === 'closed') return;
    this.state = 'ready';
    this.flush();
  }

  /** The session is gone: the app's `onSessionLost` runs (its requests go out first), then what waited. */
  private async lose(reason: string, error?: GateError): Promise<void> {
    this.sessionToken = undefined;
    this.hadSession = false;
    this.state = 'resuming';
    this.hookOpen = true;
    try {
      await this.opts.onSessionLost?.({ reason, ...(error && { error }) });
    } catch (err) {
      this.report(err, 'onSessionLost');
    } finally {
      this.hookOpen = false;
    }
    if (this.state !== 'resuming') return;
    this.emit('sessionLost', { reason });
    this.ready();
  }

  private onClose(): void {
    clearTimeout(this.refreshTimer);
    this.connectResume = undefined;
    if (this.state === 'closed') return;
    const kick = this.kick;
    if (kick) {
      const info: KickInfo = {
        reason: kick.reason,
        ...(this.serverDisconnect?.reasonCode !== undefined && { reasonCode: this.serverDisconnect.reasonCode }),
      };
      this.requests.dropSent(kick.reason);
      this.emit('kick', info);
      return this.finish(kick.reason);
    }
    const offline: OfflineInfo = this.serverDisconnect ?? { reason: 'connection lost' };
    this.requests.dropSent('connection lost');
    this.state = 'offline';
    this.emit('offline', offline);
    if (!this.reconnect) return this.finish(`connection lost (reconnect off): ${offline.reason}`);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const r = this.reconnect as Required<ReconnectOptions>;
    if (this.attempt >= r.maxAttempts) return this.finish(`gave up reconnecting after ${this.attempt} attempts`);
    const delay = backoffDelay(r, this.attempt++);
    this.emit('reconnecting', { attempt: this.attempt, delay });
    this.reconnectTimer = setTimeout(() => {
      this.open().catch((err: Error) => {
        if (this.state === 'closed') return;
        this.emit('error', err);
        if (err instanceof ConnectError && err.reasonCode !== undefined && FATAL_CONNACK.has(err.reasonCode)) return this.finish(err.message);
        this.scheduleReconnect();
      });
    }, delay);
  }

  /** Closed for good: every waiting request rejects. */
  private finish(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.refreshTimer);
    this.requests.rejectAll(reason);
    this.emit('close', { reason });
  }

  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    if (!this.opts.getToken || this.currentToken === undefined) return;
    const exp = jwtExpiry(this.currentToken);
    if (exp === undefined) return;
    // At least 1 s apart: the gate takes one refresh per refreshInterval (1000 ms by default).
    const delay = Math.min(MAX_TIMER, Math.max(1000, exp * 1000 - (this.opts.refreshBefore ?? DEFAULTS.refreshBefore) - Date.now()));
    this.refreshTimer = setTimeout(() => {
      this.refresh().catch((err: Error) => this.emit('error', err));
    }, delay);
  }

  // ── incoming PUBLISH ────────────────────────────────────────────────────

  /** MQTT.js's per-message hook: it acknowledges a QoS 1 PUBLISH only once `done` is called (after the listeners). */
  private onPublish(c: MqttClient, packet: IPublishPacket, done: (err?: Error) => void): void {
    if (c !== this.client) return done();
    const topic = packet.topic;
    const payload = packet.payload as Uint8Array;
    const props = packet.properties;
    if (this.v5 ? topic === this.replyTopic : this.requests.isSent(topic) || this.isLateReply(topic)) {
      const key = this.v5 ? (props?.correlationData ? utf8(props.correlationData) : '') : topic;
      this.requests.settle(key, decodeReply(payload, this.v5, props?.contentType)); // false: its request timed out or was dropped
      return done();
    }
    if (topic === SESSION_TOPIC) this.onSessionToken(payload);
    else if (topic === KICK_TOPIC) {
      const body = decodePush(payload) as { reason?: unknown };
      this.kick = { reason: typeof body?.reason === 'string' ? body.reason : 'kicked' };
    } else if (this.connectResume) this.connectResume.replayed++;
    this.dispatch(topic, payload, packet, done);
  }

  /** At 3.1.1: a reply on `module/HD_x/<msgid>` to one of this client's requests that is no longer waiting (timed out, or of a dropped connection). */
  private isLateReply(topic: string): boolean {
    const m = /^[^/]+\/HD_[^/]+\/(\d+)$/.exec(topic);
    return m !== null && Number(m[1]) <= this.seq;
  }

  private onSessionToken(payload: Uint8Array): void {
    const t = decodePush(payload) as Partial<SessionToken>;
    if (typeof t?.token !== 'string') return;
    this.sessionToken = t as SessionToken;
    this.hadSession = true;
    this.emit('session', this.sessionToken);
    const cr = this.connectResume;
    if (cr) {
      this.connectResume = undefined;
      const info: ResumedInfo = {
        via: 'connect',
        userId: t.userId ?? '',
        sessionId: t.sessionId ?? '',
        settings: undefined,
        recovered: null,
        replayed: cr.replayed,
        lost: null,
      };
      this.emit('resumed', info);
    }
  }

  private dispatch(topic: string, payload: Uint8Array, packet: IPublishPacket, done: (err?: Error) => void): void {
    const matching = this.pushListeners.filter((l) => topicMatches(l.filter, topic));
    if (matching.length === 0) return done();
    const body = decodePush(payload);
    const meta: PushMeta = { topic, payload, qos: packet.qos, ...(packet.properties && { properties: packet.properties }) };
    let waits: Promise<unknown>[] | undefined;
    for (const l of matching) {
      try {
        const r = l.fn(body, meta);
        if (r && typeof (r as Promise<void>).then === 'function') (waits ??= []).push((r as Promise<void>).catch((err) => this.report(err, topic)));
      } catch (err) {
        this.report(err, topic);
      }
    }
    if (!waits) return done();
    void Promise.all(waits).then(() => done());
  }
}

/** Connects to a gate. `url`: `mqtt://host:3563`, `mqtts://…`, `ws://host:3653/mqtt`, `wss://…`. @throws ConnectError when the first connection fails. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<GateClient> {
  return new GateClient(url, options).start();
}

function isTopic(name: string): boolean {
  return name.includes('/') || name === '#' || name === '+';
}

function checkRoute(route: string): void {
  if (typeof route !== 'string' || !/^[^/+#]+\/[^/+#]+$/.test(route))
    throw new TypeError(`route must be "moduleType/HD_handler" (two levels, no wildcard, no msgid), got ${JSON.stringify(route)}`);
}

function randomHex(n: number): string {
  const bytes = new Uint8Array(n / 2);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
