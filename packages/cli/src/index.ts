export { ConfigError, loadConfig, printConfig, requireFor, MAX_CONFIG_BYTES, type Config } from './config';
export { FIELDS, envName, describeKind, type Field, type Kind } from './schema';
export { gateOptions, loadModule, runGate, runModules } from './run';
