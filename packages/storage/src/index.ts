export * from './storage-handler';
export { DEFAULT_SESSION_TTL } from './internal';
export * from './memory-storage';
export * from './redis-storage';
export * from './conformance';
