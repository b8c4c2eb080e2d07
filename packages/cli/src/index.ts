export { ConfigError, loadConfig, printConfig, requireFor, MAX_CONFIG_BYTES, type Config } from './config';
export { FIELDS, envName, describeKind, type Field, type Kind } from './schema';
export { unknownVariables, warnUnknownVariables } from './environment';
export {
  ADMISSION_KEYS,
  admissionOptions,
  gateOptions,
  loadModule,
  loadStorage,
  NATS_MISSING,
  runGate,
  runModules,
  type StorageFactory,
  type StorageFactoryOptions,
} from './run';
