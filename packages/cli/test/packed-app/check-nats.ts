// Type-checked by the packed-app test after @mqgate/nats is installed (an opt-in: an optional
// peer of @mqgate/cli), under node16 and bundler resolution, and under node10 with skipLibCheck
// (the @nats-io types it re-exports use subpath exports, which node10 cannot see).
import { NatsTransport, NATS_DEFAULTS, type NatsTransportOptions } from '@mqgate/nats';
import type { RpcTransport } from '@mqgate/rpc';

const options: NatsTransportOptions = { servers: ['nats://127.0.0.1:4222'], defaultTimeout: NATS_DEFAULTS.defaultTimeout };
export const transport: RpcTransport = new NatsTransport(options);
