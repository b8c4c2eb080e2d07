import { quoteInput } from './input-echo';
import type { RpcValue, UserProperties } from './types';

export type { Mqtt5Request, UserProperties } from './types';

/**
 * MQTT 5 properties as they cross the RpcTransport between the gate and modules (MQTT
 * Version 5.0 §3.3.2.3). Plain data, so they travel as RpcValues; the gate drops all of them
 * for MQTT 3.1 / 3.1.1 clients, which have no properties.
 */

/**
 * Properties a module may put on a push (`Session.send`, `sendBatch`, `broadcast`,
 * `UserDirectory.sendToUser`) or on a reply ({@link replyWithProperties}). Dropped for
 * MQTT 3.1 / 3.1.1 clients.
 */
export interface Mqtt5PushProperties {
  /** User Properties of the PUBLISH (§3.3.2.3.7). */
  userProperties?: UserProperties;
  /** Content Type of the PUBLISH (§3.3.2.3.9), e.g. `"application/json"`. */
  contentType?: string;
  /** Message Expiry Interval, seconds, 1..4 294 967 295 (§3.3.2.3.3); pushes only. */
  messageExpiryInterval?: number;
}

/**
 * The first element of a reply that carries MQTT 5 properties. A handler result of the
 * shape `[REPLY_PROPERTIES_TAG, properties, result]` (made by {@link replyWithProperties})
 * is answered with `result`, and `properties` on the reply PUBLISH. An array, not an
 * object, so that a bytes result inside it survives the Redis codec (which carries bytes in
 * lists but not inside JSON objects).
 */
export const REPLY_PROPERTIES_TAG = 'mqgate.reply-properties/v5';

/** The reply properties a handler may set: User Properties and Content Type. */
export type ReplyProperties = Pick<Mqtt5PushProperties, 'userProperties' | 'contentType'>;

/** A handler result with reply properties, as it crosses the transport. */
export type ReplyWithProperties = [typeof REPLY_PROPERTIES_TAG, ReplyProperties, RpcValue];

/**
 * Wraps a handler result so that an MQTT 5 client's reply carries these properties. The
 * wire shape is `["mqgate.reply-properties/v5", {userProperties?, contentType?}, result]`.
 * @throws TypeError when a User Property value is not a string (or list of strings), or
 *   contentType is not a string.
 */
export function replyWithProperties(result: RpcValue, properties: ReplyProperties): ReplyWithProperties {
  const props: { userProperties?: UserProperties; contentType?: string } = {};
  if (properties.userProperties !== undefined) props.userProperties = checkUserProperties('replyWithProperties', properties.userProperties);
  if (properties.contentType !== undefined) {
    if (typeof properties.contentType !== 'string') throw new TypeError('replyWithProperties: contentType must be a string');
    props.contentType = properties.contentType;
  }
  return [REPLY_PROPERTIES_TAG, props, result];
}

/** Splits a handler result into its reply properties (undefined when none) and the result proper. */
export function unwrapReply(value: RpcValue): [ReplyProperties | undefined, RpcValue] {
  if (Array.isArray(value) && value.length === 3 && value[0] === REPLY_PROPERTIES_TAG) {
    const props = value[1];
    return [typeof props === 'object' && props !== null && !Array.isArray(props) ? (props as ReplyProperties) : undefined, value[2]];
  }
  return [undefined, value];
}

/**
 * Checks the shape of User Properties: an object of strings or lists of strings.
 * @throws TypeError naming `where` and the offending name.
 */
export function checkUserProperties(where: string, value: unknown): UserProperties {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new TypeError(`${where}: userProperties must be an object of strings`);
  }
  for (const [k, v] of Object.entries(value)) {
    const ok = typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'));
    if (!ok) throw new TypeError(`${where}: userProperties[${quoteInput(k)}] must be a string or a list of strings`);
  }
  return value as UserProperties;
}

/**
 * Checks push properties (the gate's side of `Send`/`SendBatch`/`BroadCast`'s optional
 * last argument). Undefined or null → undefined.
 * @throws TypeError for a value of the wrong shape.
 */
export function checkPushProperties(where: string, value: unknown): Mqtt5PushProperties | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) throw new TypeError(`${where}: properties must be an object`);
  const p = value as Record<string, unknown>;
  const out: { userProperties?: UserProperties; contentType?: string; messageExpiryInterval?: number } = {};
  if (p.userProperties !== undefined) out.userProperties = checkUserProperties(where, p.userProperties);
  if (p.contentType !== undefined) {
    if (typeof p.contentType !== 'string') throw new TypeError(`${where}: contentType must be a string`);
    out.contentType = p.contentType;
  }
  if (p.messageExpiryInterval !== undefined) {
    const e = p.messageExpiryInterval;
    if (typeof e !== 'number' || !Number.isInteger(e) || e < 1 || e > 0xffffffff) {
      throw new TypeError(`${where}: messageExpiryInterval must be an integer of seconds in 1..4294967295`);
    }
    out.messageExpiryInterval = e;
  }
  return out;
}
