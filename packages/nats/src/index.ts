/** `@mqgate/nats`: the NATS transport of mqgate (see {@link NatsTransport}). */
export { NatsTransport, type NatsTransportEvents, type NatsTransportStats } from './transport';
export { NATS_DEFAULTS, DEFAULT_NATS_URL, resolveNatsOptions, type NatsTransportOptions, type ResolvedNatsOptions } from './options';
export { NatsUnavailableError } from './errors';
export { subjects, token, DEADLINE_HEADER, type Subjects } from './subjects';
export type { CallerCounters } from './caller';
export type { ServerCounters } from './server';
export type { RegistryEvent } from './registry';
