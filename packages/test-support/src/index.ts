export * from './redis-server';
export * from './mqtt-client';
export * from './waits';
export * from './certs';
