// Over 400 lines on purpose: the backend Session is mqant's public API, one method per verb, each
// with the docstring its users read (shapes, errors, where it differs from mqant). Its helpers
// live in session-args.ts (argument checks) and session-edits.ts (the local copy).
import {
  decodeSession,
  encodeSession,
  gateClient,
  isSessionData,
  makeSessionData,
  silentLogger,
  type CallOptions,
  type GateClient,
  type Logger,
  type Mqtt5PushProperties,
  type PushQos,
  type RpcTransport,
  type SessionData,
} from '@mqgate/rpc';
import { checkPushProperties } from '@mqgate/rpc/internal';
import { SessionVerbError, describe, shortId, toRpcError } from './errors';
import { checkKey, checkNonEmpty, checkRule, checkTopic, checkValue, encodeBody, listText, quote } from './session-args';
import { applyEdits, define, newSpanId, withFields, type Pending } from './session-edits';

/**
 * Decides whether a session is a guest (mqant `gate.JudgeGuest`). Called by
 * {@link Session.isGuest}; it should be cheap and must not throw.
 */
export type GuestRule = (session: Session) => boolean;

/**
 * What {@link Session.send} and friends accept as a message body: bytes are sent as is
 * (not copied: do not change them afterwards), a string as UTF-8, any other object or
 * array as UTF-8 JSON.
 */
export type MessageBody = Uint8Array | string | Record<string, unknown> | readonly unknown[];

export interface SessionOptions {
  /**
   * Guest predicate for {@link Session.isGuest}. Default: none, so a session is a guest
   * while its `userId` is `""` (mqant's rule). Kept by `clone()`; give it again to
   * `Session.deserialize` (mqant drops it on both, so a global `JudgeGuest` never applies
   * to sessions received over RPC).
   */
  guestRule?: GuestRule;
  /** ms each RPC verb waits for the gate. Default: the transport's `defaultTimeout` (10 000 ms). */
  timeout?: number;
  /** Where {@link Session.sendNR} reports the failures it swallows (at `debug`). Default: silent. */
  logger?: Logger;
}

/**
 * What a push verb takes after the body: the MQTT 5 properties of the PUBLISH, and `qos`
 * (QoS 1 pushes are delivered at least once): 0, the default, at most once (as mqant); 1, at least once: the gate
 * keeps the push until the client's PUBACK, at most the gate's maxOutboundInflight (or the
 * MQTT 5 client's Receive Maximum) unacknowledged at once with the rest queued in order, and
 * resends the unacknowledged ones with DUP 1 when the session resumes on a new connection.
 */
export type PushOptions = Mqtt5PushProperties & { qos?: PushQos };

/** Checks push options for a verb: the properties, and qos 0 or 1. @throws TypeError naming the verb. */
function pushOptions(verb: string, options: unknown): { props: Mqtt5PushProperties | undefined; qos: PushQos } {
  if (options === undefined || options === null || typeof options !== 'object' || !('qos' in options)) {
    return { props: checkPushProperties(`Session.${verb}`, options), qos: 0 };
  }
  const { qos, ...rest } = options as { qos?: unknown };
  if (qos !== undefined && qos !== 0 && qos !== 1)
    throw new TypeError(`Session.${verb}: qos must be 0 or 1, got ${JSON.stringify(qos) ?? String(qos)}`);
  return { props: Object.keys(rest).length > 0 ? checkPushProperties(`Session.${verb}`, rest) : undefined, qos: qos === 1 ? 1 : 0 };
}

/** One call of the gate's session service, given the stub and this session's id. */
type Verb<T> = (gate: GateClient, sessionId: string) => Promise<T>;

/**
 * The session a module handler receives: a local copy of the gate's session for one
 * request (mqant's `gate.Session` on the backend side).
 *
 * Reads (`userId`, `get(key)`, ...) and `setLocal`/`removeLocal` touch only this copy.
 * The RPC verbs (`bind`, `push`, `send`, ...) call the owning gate's session service
 * (`GateService`, through `gateClient(transport, session.serverId)`), and the verbs that
 * change the gate's session then replace this copy with the gate's answer.
 *
 * Differences from mqant, on purpose:
 * - `push()` sends only the keys changed locally since the copy was made (and removes the
 *   keys removed locally), never the whole map, so a stale copy cannot overwrite another
 *   module's newer value. mqant's Push resends everything (last writer wins, no deletes).
 * - Local edits that a verb did not send survive the refresh that follows it, instead of
 *   being overwritten by the gate's copy.
 * - `clone()` keeps `topic` and the guest rule (mqant's Clone drops both).
 * - Failures are {@link SessionVerbError}s with a `code` instead of bare strings.
 * - Bad arguments throw a `TypeError` naming the verb and the argument.
 *
 * `topic` and `spanId` belong to the request, so they keep their local values when the
 * copy is refreshed from the gate.
 */
export class Session {
  private data: SessionData;
  private readonly dirty: Map<string, Pending>;
  private rule: GuestRule | undefined;
  private readonly transport: RpcTransport;
  private readonly callOptions: CallOptions | undefined;
  private readonly logger: Logger;
  /** The owning gate's session service, made on first use. */
  private stub: GateClient | undefined;

  /**
   * @param data the session as the gate sent it; it is not copied and never changed
   *   (every change makes a new SessionData).
   * @param transport used for every RPC verb.
   * @throws TypeError when `data` is not an object or an option has the wrong type.
   */
  constructor(data: SessionData, transport: RpcTransport, options: SessionOptions = {}) {
    if (typeof data !== 'object' || data === null) throw new TypeError(`Session: data must be a SessionData, got ${describe(data)}`);
    if (typeof transport !== 'object' || transport === null)
      throw new TypeError(`Session: transport must be an RpcTransport, got ${describe(transport)}`);
    checkRule('Session', options.guestRule);
    if (options.timeout !== undefined && !(typeof options.timeout === 'number' && options.timeout >= 0)) {
      throw new TypeError(`Session: timeout must be a number of ms >= 0, got ${describe(options.timeout)}`);
    }
    this.data = isSessionData(data) ? data : makeSessionData(data);
    this.transport = transport;
    this.rule = options.guestRule;
    this.callOptions = options.timeout === undefined ? undefined : { timeout: options.timeout };
    this.logger = options.logger ?? silentLogger;
    this.dirty = new Map();
  }

  /**
   * Rebuilds a session from {@link serialize}'s bytes (mqant `basegate.NewSession`).
   * Local edits are not part of the bytes' meaning: the new session has none pending.
   * @throws TypeError when `bytes` is not a Uint8Array; Error when it is not a SessionImp message.
   */
  static deserialize(bytes: Uint8Array, transport: RpcTransport, options: SessionOptions = {}): Session {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`Session.deserialize: bytes must be a Uint8Array, got ${describe(bytes)}`);
    let data: SessionData;
    try {
      data = decodeSession(bytes);
    } catch (err) {
      throw new Error(`Session.deserialize: not a SessionImp message: ${toRpcError(err).message}`, { cause: err });
    }
    return new Session(data, transport, options);
  }

  // ---- local reads --------------------------------------------------------------------

  /** `""` until the gate binds the connection to a user (mqant `GetUserID`). */
  get userId(): string {
    return this.data.userId;
  }
  /** Client address as the gate saw it (mqant `GetIP`). */
  get ip(): string {
    return this.data.ip;
  }
  /** `"tcp"` or `"websocket"` (mqant `GetNetwork`). */
  get network(): string {
    return this.data.network;
  }
  /** The connection's id on its gate (mqant `GetSessionID`). */
  get sessionId(): string {
    return this.data.sessionId;
  }
  /** Server id of the gate that owns the connection; every verb is sent there (mqant `GetServerID`). */
  get serverId(): string {
    return this.data.serverId;
  }
  /** Trace id, one per connection (mqant `TraceID`). */
  get traceId(): string {
    return this.data.traceId;
  }
  /** Span id, one per request and per clone (mqant `SpanID`). */
  get spanId(): string {
    return this.data.spanId;
  }
  /** MQTT topic of the request being handled, `""` outside a request (mqant `GetTopic`). */
  get topic(): string {
    return this.data.topic;
  }
  /**
   * MQTT protocol level of the client's connection: 3 (MQTT 3.1), 4 (3.1.1) or 5; 0 when
   * the gate did not say (a Go mqant gate, which speaks 3.1 / 3.1.1). Push properties
   * reach only level-5 clients.
   */
  get protocolVersion(): number {
    return this.data.protocolVersion;
  }
  /** A frozen copy of the local settings, local edits included (mqant `CloneSettings`). */
  get settings(): Readonly<Record<string, string>> {
    return Object.freeze({ ...this.data.settings });
  }

  /** A local setting, or `undefined` (mqant `Get`, which returns `""` for a missing key). */
  get(key: string): string | undefined {
    const s = this.data.settings;
    return Object.prototype.hasOwnProperty.call(s, key) ? s[key] : undefined;
  }

  /**
   * Guest or not: the guest rule's answer when one is set, else `userId === ''`
   * (mqant `IsGuest`).
   */
  isGuest(): boolean {
    return this.rule ? this.rule(this) : this.data.userId === '';
  }

  /**
   * Sets (or, with `undefined`, clears) this instance's guest rule (mqant `JudgeGuest`).
   * @throws TypeError when `rule` is neither a function nor undefined.
   */
  judgeGuest(rule: GuestRule | undefined): void {
    checkRule('Session.judgeGuest', rule);
    this.rule = rule;
  }

  /** The local copy as plain SessionData (local edits included), e.g. to pass the session on in an RPC. */
  toData(): SessionData {
    return this.data;
  }

  /** mqant `Serializable`: the local copy as mqant `SessionImp` protobuf bytes. */
  serialize(): Uint8Array {
    return encodeSession(this.data);
  }

  /**
   * A copy with its own settings and a new span id (mqant `Clone`), that also keeps
   * `topic`, the guest rule, and the local edits not yet pushed (mqant drops Topic and
   * the guest rule).
   */
  clone(): Session {
    const copy = new Session(withFields(this.data, { spanId: newSpanId() }), this.transport, {
      guestRule: this.rule,
      timeout: this.callOptions?.timeout,
      logger: this.logger,
    });
    for (const [k, p] of this.dirty) copy.dirty.set(k, p);
    return copy;
  }

  // ---- local edits --------------------------------------------------------------------

  /**
   * Sets a key in the local copy only and marks it for the next {@link push}
   * (mqant `SetLocalKV`).
   * @throws TypeError when `key` is not a non-empty string or `value` not a string.
   */
  setLocal(key: string, value: string): void {
    checkKey('setLocal', key);
    checkValue('setLocal', value);
    this.edit(key, { op: 'set', value });
  }

  /**
   * Removes a key from the local copy only and marks the removal for the next
   * {@link push} (mqant `RemoveLocalKV`).
   * @throws TypeError when `key` is not a non-empty string.
   */
  removeLocal(key: string): void {
    checkKey('removeLocal', key);
    this.edit(key, { op: 'remove' });
  }

  // ---- RPC verbs that change the gate's session -----------------------------------------

  /**
   * Binds the connection to a user (gate `Bind(sessionId, userId)`); the gate may merge
   * stored settings in. Then refreshes the local copy.
   *
   * Resolves with `{}`, or with `{ warning }` when the bind was made on the gate but its
   * session store failed (gate code `STORAGE_UNAVAILABLE`; `warning` is its client text:
   * stored settings are merged and the session stored when the store is back). A login
   * handler can answer with its result and that warning instead of an Error.
   * @throws TypeError for an empty or non-string `userId`; SessionVerbError when the call
   *   fails (not bound: DUPLICATE_LOGIN, USER_INDEX, NO_SESSION...).
   */
  async bind(userId: string): Promise<{ warning?: string }> {
    checkNonEmpty('bind', 'userId', userId);
    try {
      await this.change('bind', quote(userId), (g, sid) => g.bind(sid, userId), []);
    } catch (err) {
      // change() has refreshed the local copy from the gate: the session is bound there.
      if (err instanceof SessionVerbError && err.code === 'STORAGE_UNAVAILABLE' && this.data.userId === userId) return { warning: err.message };
      throw err;
    }
    return {};
  }

  /**
   * Clears the user id (gate `UnBind(sessionId, delete)`), then refreshes the local copy.
   * With `{ delete: true }` the gate also deletes what its StorageHandler holds for the user:
   * an explicit logout (mqant never calls Delete). A plain unbind keeps the stored data.
   * @throws SessionVerbError when the call fails.
   */
  async unbind(options: { delete?: boolean } = {}): Promise<void> {
    const del = options.delete === true;
    await this.change('unbind', del ? '{ delete: true }' : '', (g, sid) => g.unbind(sid, del), []);
  }

  /**
   * Sets one key on the gate (gate `Set(sessionId, key, value)`), then refreshes the local copy.
   * @throws TypeError for a bad key or value; SessionVerbError when the call fails.
   */
  async set(key: string, value: string): Promise<void> {
    checkKey('set', key);
    checkValue('set', value);
    await this.change('set', quote(key), (g, sid) => g.set(sid, key, value), [key]);
  }

  /**
   * Sets the key locally, then {@link push}es every local edit (mqant `SetPush`, which
   * resends the whole map; this sends only the edits).
   * @throws TypeError for a bad key or value; SessionVerbError when a call fails.
   */
  async setPush(key: string, value: string): Promise<void> {
    checkKey('setPush', key);
    checkValue('setPush', value);
    this.edit(key, { op: 'set', value });
    await this.pushAs('setPush', quote(key));
  }

  /**
   * Sends exactly these keys (gate `Push(sessionId, settings)`, mqant `SetBatch`), then
   * refreshes the local copy. The map is copied before it is sent.
   * @throws TypeError when `settings` is not an object of string values; SessionVerbError when the call fails.
   */
  async setBatch(settings: Readonly<Record<string, string>>): Promise<void> {
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
      throw new TypeError(`Session.setBatch: settings must be an object of string values, got ${describe(settings)}`);
    }
    const copy: Record<string, string> = {};
    for (const key of Object.keys(settings)) {
      checkKey('setBatch', key);
      const value = settings[key];
      if (typeof value !== 'string') throw new TypeError(`Session.setBatch: settings[${quote(key)}] must be a string, got ${describe(value)}`);
      define(copy, key, value);
    }
    const keys = Object.keys(copy);
    await this.change('setBatch', listText(keys), (g, sid) => g.push(sid, copy), keys);
  }

  /**
   * Sends the local edits made since the copy was made or last refreshed: keys set
   * locally via gate `Push(sessionId, {changed keys})`, keys removed locally via gate
   * `Remove(sessionId, key | keys[])`. With nothing to send it refreshes via gate `Update`.
   * mqant's Push resends the whole local map and cannot delete.
   * @throws SessionVerbError when a call fails; the edits it did not deliver stay pending.
   */
  async push(): Promise<void> {
    await this.pushAs('push', '');
  }

  /**
   * Removes one key on the gate (gate `Remove(sessionId, key)`), then refreshes the local copy.
   * @throws TypeError for a bad key; SessionVerbError when the call fails.
   */
  async remove(key: string): Promise<void> {
    checkKey('remove', key);
    await this.change('remove', quote(key), (g, sid) => g.remove(sid, [key]), [key]);
  }

  /**
   * Replaces the local copy with the gate's current one (gate `Update(sessionId)`),
   * keeping the local edits not yet pushed.
   * @throws SessionVerbError when the call fails.
   */
  async update(): Promise<void> {
    await this.change('update', '', (g, sid) => g.update(sid), []);
  }

  // ---- RPC verbs that do not change the session -----------------------------------------

  /**
   * Pushes a message to this client (gate `Send(sessionId, topic, body[, properties[, qos]])`)
   * and waits for the gate to accept it. The properties of `options` (User Properties,
   * Content Type, Message Expiry Interval) go on the PUBLISH to an MQTT 5 client and are
   * dropped for 3.1 / 3.1.1; `options.qos` 1 delivers at least once ({@link PushOptions}):
   * the call resolves once the gate holds the push, not at the PUBACK.
   * @throws TypeError for a bad topic (empty, or holding `+`/`#`), body, properties, or a qos
   *   other than 0 or 1; SessionVerbError when the call fails (e.g. `NO_SESSION` once the client
   *   has gone, `BAD_ARGUMENT` when the push exceeds the MQTT 5 client's Maximum Packet Size,
   *   `LIMIT` when a QoS 1 push finds the gate's maxOutboundQueue or maxBufferedBytes full).
   */
  async send(topic: string, body: MessageBody, options?: PushOptions): Promise<void> {
    checkTopic('send', topic);
    const bytes = encodeBody('send', body);
    const { props, qos } = pushOptions('send', options);
    await this.call('send', quote(topic), (g, sid) => g.send(sid, topic, bytes, props, qos));
  }

  /**
   * Fire and forget (mqant `SendNR`): hands the message to the transport and returns at
   * once. Never throws: bad arguments and delivery failures are dropped and reported to
   * the session's logger at `debug`. Use {@link send} to learn the outcome.
   */
  sendNR(topic: string, body: MessageBody, options?: PushOptions): void {
    try {
      checkTopic('sendNR', topic);
      const bytes = encodeBody('sendNR', body);
      const { props, qos } = pushOptions('sendNR', options);
      this.gate()
        .sendNR(this.data.sessionId, topic, bytes, props, qos)
        .catch((err: unknown) => this.reportDropped(topic, err));
    } catch (err) {
      this.reportDropped(topic, err);
    }
  }

  /**
   * Pushes one message to several sessions of this session's gate (gate
   * `SendBatch("id1,id2,…", topic, body)`); resolves with how many were delivered.
   * Ids the gate does not hold are skipped. An empty list resolves 0 without a call.
   * `options` as for {@link send}.
   * @throws TypeError for a bad id, topic, body or options; SessionVerbError when the call fails.
   */
  async sendBatch(sessionIds: readonly string[], topic: string, body: MessageBody, options?: PushOptions): Promise<number> {
    if (!Array.isArray(sessionIds)) throw new TypeError(`Session.sendBatch: sessionIds must be an array of strings, got ${describe(sessionIds)}`);
    sessionIds.forEach((id: unknown, i) => {
      if (typeof id !== 'string' || id === '' || id.includes(',')) {
        throw new TypeError(`Session.sendBatch: sessionIds[${i}] must be a non-empty string without ",", got ${describe(id)}`);
      }
    });
    checkTopic('sendBatch', topic);
    const bytes = encodeBody('sendBatch', body);
    const { props, qos } = pushOptions('sendBatch', options);
    if (sessionIds.length === 0) return 0;
    const text = `${sessionIds.length} ids, ${quote(topic)}`;
    return this.call('sendBatch', text, (g) => g.sendBatch(sessionIds, topic, bytes, props, qos));
  }

  /**
   * Pushes one message to every connection on this session's gate (gate
   * `BroadCast(topic, body)`; mqant has no Session method for it); resolves with how many
   * were delivered. `options` as for {@link send}.
   * @throws TypeError for a bad topic, body or options; SessionVerbError when the call fails.
   */
  async broadcast(topic: string, body: MessageBody, options?: PushOptions): Promise<number> {
    checkTopic('broadcast', topic);
    const bytes = encodeBody('broadcast', body);
    const { props, qos } = pushOptions('broadcast', options);
    return this.call('broadcast', quote(topic), (g) => g.broadcast(topic, bytes, props, qos));
  }

  /**
   * Whether a user has a connection on this session's gate (gate `IsConnect`; only that
   * gate is asked). `false` when not, where mqant answers with an error.
   * @throws TypeError for a bad userId; SessionVerbError when the call fails.
   */
  async isConnect(userId: string): Promise<boolean> {
    checkNonEmpty('isConnect', 'userId', userId);
    return this.call('isConnect', quote(userId), (g, sid) => g.isConnect(sid, userId));
  }

  /**
   * Asks the gate to close this connection (gate `Close(sessionId, reason?)`); with a
   * reason the client first receives it on the gate's kick topic.
   * @throws TypeError when `reason` is given and not a string; SessionVerbError when the call fails.
   */
  async close(reason?: string): Promise<void> {
    if (reason !== undefined && typeof reason !== 'string') throw new TypeError(`Session.close: reason must be a string, got ${describe(reason)}`);
    await this.call('close', reason === undefined ? '' : quote(reason), (g, sid) => g.close(sid, reason));
  }

  // ---- internals ----------------------------------------------------------------------

  private gate(): GateClient {
    return (this.stub ??= gateClient(this.transport, this.data.serverId, this.callOptions));
  }

  /** Applies one local edit to the local copy and records it as pending. */
  private edit(key: string, p: Pending): void {
    this.data = withFields(this.data, { settings: applyEdits(this.data.settings, [[key, p]]) });
    this.dirty.set(key, p);
  }

  private async pushAs(verb: string, argsText: string): Promise<void> {
    const sets: Record<string, string> = {};
    const setKeys: string[] = [];
    const removeKeys: string[] = [];
    for (const [key, p] of this.dirty) {
      if (p.op === 'set') {
        define(sets, key, p.value);
        setKeys.push(key);
      } else removeKeys.push(key);
    }
    const sid = this.data.sessionId;
    if (setKeys.length === 0 && removeKeys.length === 0) {
      await this.change(verb, argsText, (g) => g.update(sid), []);
      return;
    }
    if (setKeys.length > 0) await this.change(verb, argsText, (g) => g.push(sid, sets), setKeys);
    if (removeKeys.length > 0) await this.change(verb, argsText, (g) => g.remove(sid, removeKeys), removeKeys);
  }

  /**
   * Runs a verb that answers with the session, then adopts the answer. `sentKeys` are the
   * keys this call delivers: their pending edits are dropped unless they were edited again
   * while the call was in flight.
   */
  private async change(verb: string, argsText: string, run: Verb<SessionData>, sentKeys: readonly string[]): Promise<void> {
    const before = sentKeys.map((k) => [k, this.dirty.get(k)] as const);
    let fresh: SessionData;
    try {
      fresh = await this.call(verb, argsText, run);
    } catch (err) {
      // STORAGE(_UNAVAILABLE): the change is live on the gate, only its persistence failed. Adopt the
      // gate's copy so this session agrees with the gate, then report the failure.
      if (err instanceof SessionVerbError && (err.code === 'STORAGE' || err.code === 'STORAGE_UNAVAILABLE')) {
        for (const [k, p] of before) if (this.dirty.get(k) === p) this.dirty.delete(k);
        await this.update().catch(() => undefined);
      }
      throw err;
    }
    for (const [k, p] of before) if (this.dirty.get(k) === p) this.dirty.delete(k);
    this.data = withFields(fresh, {
      settings: this.dirty.size === 0 ? fresh.settings : applyEdits(fresh.settings, this.dirty),
      topic: this.data.topic,
      spanId: this.data.spanId,
    });
  }

  /** Runs one verb on the owning gate; any failure becomes a SessionVerbError naming the verb. */
  private async call<T>(verb: string, argsText: string, run: Verb<T>): Promise<T> {
    try {
      return await run(this.gate(), this.data.sessionId);
    } catch (err) {
      throw new SessionVerbError(verb, argsText, this.data.sessionId, toRpcError(err));
    }
  }

  private reportDropped(topic: string, err: unknown): void {
    this.logger.debug({ sessionId: shortId(this.data.sessionId), topic, err: toRpcError(err).message }, 'Session.sendNR dropped a message');
  }
}
