import { RpcError } from '../errors';

/**
 * A call could not be sent because Redis is unreachable (code `UNAVAILABLE`). The message
 * names the connection state and the last connection error, e.g. `Redis unavailable: call
 * HD_login not sent within 10000 ms (command connection reconnecting; last error: connect
 * ECONNREFUSED 127.0.0.1:6379)`.
 */
export class RedisUnavailableError extends RpcError {
  constructor(message: string) {
    super(message, 'UNAVAILABLE');
  }
}

/** Re-exported from `@mqgate/rpc` (every transport with failure detection rejects with it). */
export { ServerLostError } from '../errors';
