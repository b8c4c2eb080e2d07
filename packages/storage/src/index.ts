export * from './storage-handler';
