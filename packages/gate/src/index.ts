export { Gate, createGate, STOP_REASON, type BanTarget, type GateAddresses, type GateEvents } from './gate';
export { PersistenceError } from './persistence/error';
export type { StorageFailure, StorageStats } from './persistence/persistence';
export {
  DEFAULTS,
  autoMaxConnections,
  fileDescriptorLimit,
  resolveOptions,
  type GateOptions,
  type ConnectInfo,
  type AuthenticateResult,
  type ListenOptions,
} from './options';
export { JWT_TEXT, type JwtClaims, type JwtOptions } from './jwt/verifier';
export { JWT_AUTH_METHOD, REFRESH_TOPIC, TOKEN_EXPIRED_CODE, TOKEN_EXPIRED_REASON } from './jwt/connect';
export type { SessionEvents } from './session/manager';
export type { SessionCounts } from '@mqgate/rpc';
export type { RouterStats } from './routing/router';
export { parseTopic, TOPIC_FORM_ERROR } from './routing/topic';
export { decodePayload, encodeReply } from './routing/envelope';
export { KICK_TOPIC } from '@mqgate/rpc';
export type { TlsReload } from './wire/tls';
export type { TcpListenOptions, TlsListenOptions, PemSource, ClientCertificate, RateLimit } from './options';
export type { Readiness } from './ops/server';
export { GateMetrics, closeReasonLabel } from './ops/metrics';
export type { Traffic } from './protocol/traffic';
