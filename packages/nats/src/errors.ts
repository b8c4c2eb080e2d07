import { RpcError } from '@mqgate/rpc';

/** NATS cannot be reached (not connected, or the connection dropped with the call in flight); code `UNAVAILABLE`. */
export class NatsUnavailableError extends RpcError {
  constructor(servers: readonly string[], detail: string) {
    super(`NATS is unreachable (${servers.join(', ')}): ${detail}`, 'UNAVAILABLE');
  }
}
