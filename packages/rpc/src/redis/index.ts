/**
 * `@mqgate/rpc/redis`: everything of @mqgate/rpc that runs on Redis (and loads ioredis).
 * `@mqgate/rpc` itself never loads ioredis, so apps on the in-process transport do not.
 */
export { RedisTransport, type RedisTransportEvents, type RedisTransportStats } from './transport';
export type { CallerCounters } from './caller';
export type { ConsumerCounters } from './consumer';
export { TRANSPORT_DEFAULTS, resolveTransportOptions, type RedisTransportOptions, type ResolvedTransportOptions } from './options';
export { RedisUnavailableError, ServerLostError } from './errors';
export { RedisRegistry, type RegistryListener } from './registry';
export { RedisUserIndex, type RedisUserIndexOptions } from './user-index';
export {
  CONNECTION_POLICY,
  DEFAULT_REDIS_URL,
  PIPELINED,
  createRedis,
  duplicateRedis,
  isCluster,
  quitRedis,
  reconnectDelay,
  type ConnectionVariant,
  type RedisClient,
} from './connection';
export {
  bansKey,
  DEFAULT_KEY_PREFIX,
  DEFAULT_RPC_PREFIX,
  KEY_SCHEMA,
  registryKeys,
  replyChannel,
  rpcListKeys,
  sessionKey,
  sessionPrefix,
  userIndexEpochKey,
  userKey,
  type KeyDoc,
  type RegistryKeys,
} from './keys';
