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

/**
 * A call was in flight to a server that stopped answering (no heartbeat for
 * `heartbeatTimeout` ms, or its registry entry expired): code `NO_SERVER`, rejected at once
 * instead of at the call's deadline. The call may or may not have run. The message says
 * which module and server, e.g. `module unavailable: server echo@1 (type echo) stopped
 * answering (no heartbeat for 1000 ms) while call ping was in flight`.
 */
export class ServerLostError extends RpcError {
  constructor(message: string) {
    super(message, 'NO_SERVER');
  }
}
