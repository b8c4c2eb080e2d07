export * from './storage-handler';
export { DEFAULT_SESSION_TTL } from './internal';
export * from './memory-storage';
export * from './redis-storage';
// The conformance suite uses jest's globals: it is its own entry, @mqgate/storage/conformance.
