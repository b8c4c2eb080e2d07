/**
 * @mqgate/sdk: the end-user side of mqgate (and of mqant's gate), for browsers and Node, on
 * MQTT.js. `connect(url, options)` gives a {@link GateClient}: `request(route, body)` is a
 * promise of the reply's Result, `on(topic)` gets pushes, and a dropped connection comes
 * back with backoff and resumes its session.
 */
export { connect, GateClient } from './gate-client.js';
export type { GateEvents, KickInfo, OfflineInfo, PushListener, PushMeta, ResumedInfo, SessionToken } from './gate-client.js';
export { ConnectError, ConnectionLostError, GateError, TimeoutError } from './errors.js';
export { DEFAULTS, backoffDelay } from './options.js';
export type { ConnectOptions, ReconnectOptions, RequestOptions, SessionLostInfo } from './options.js';
export { KICK_TOPIC, REFRESH_ROUTE, RESUME_ROUTE, SESSION_TOPIC, topicMatches } from './wire.js';
export type { Body, Envelope } from './wire.js';
