export * from './errors';
export * from './session-data';
export * from './transport';
export * from './in-process-transport';
export * from './gate-api';
export * from './component';
export * from './logger';
