export { Gate, createGate, STOP_REASON, type GateAddresses, type GateEvents } from './gate';
export { PersistenceError } from './errors';
export type { StorageFailure, StorageStats } from './session-persistence';
export { DEFAULTS, resolveOptions, type GateOptions, type ConnectInfo, type AuthenticateResult, type ListenOptions } from './options';
export type { SessionEvents } from './session-manager';
export type { SessionCounts } from '@mqgate/rpc';
export type { RouterStats } from './router';
export { parseTopic, decodePayload, encodeReply, TOPIC_FORM_ERROR } from './router';
export { KICK_TOPIC } from '@mqgate/rpc';
