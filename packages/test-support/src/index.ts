export * from './server-process';
export * from './redis-server';
export * from './nats-server';
export * from './mqtt-client';
export * from './waits';
export * from './certs';
export * from './spawn-until';
