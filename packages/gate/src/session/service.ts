import { RpcError, type GateService } from '@mqgate/rpc';
import { quoteInput } from '@mqgate/rpc/internal';
import { State } from '../protocol/state';
import type { ResumeManager } from '../resume/manager';
import type { SessionManager } from './manager';
import type { WarnLog } from '../ops/warn-log';

/** Keys as an error text names them: the first {@link KEYS_NAMED}, each cut to a short prefix (client input). */
function keyList(keys: readonly string[]): string {
  const named = keys.slice(0, KEYS_NAMED).map((k) => quoteInput(k));
  return keys.length > KEYS_NAMED ? `${named.join(', ')}, … ${keys.length} keys` : named.join(', ');
}

/** Keys an error text names at most. */
const KEYS_NAMED = 5;

function asBuffer(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/**
 * The gate's side of {@link GateService}: each verb run on the SessionManager. Arguments
 * arrive decoded and checked (`serveGateService` in rpc); an unknown session id fails with
 * NO_SESSION; the gate itself never fails for a bad call. A QoS 1 push refused at a limit is
 * reported to `warn` (rate-limited, kind `limit:outboundQos1`).
 */
export function gateService(manager: SessionManager, resume?: ResumeManager, warn?: WarnLog): GateService {
  return {
    update: async (sid) => manager.require(sid).snapshot(),
    bind: async (sid, userId) => {
      const s = manager.requireConnected(sid);
      await manager.bind(s, userId);
      return s.snapshot();
    },
    unbind: async (sid, deleteStored) => {
      const s = manager.requireConnected(sid);
      await manager.unbind(s, deleteStored);
      return s.snapshot();
    },
    push: async (sid, settings) => {
      const s = manager.require(sid);
      await manager.changeSettings(s, settings, [], `Push(${keyList(Object.keys(settings))})`);
      return s.snapshot();
    },
    set: async (sid, key, value) => {
      const s = manager.require(sid);
      await manager.changeSettings(s, { [key]: value }, [], `Set(${quoteInput(key)})`);
      return s.snapshot();
    },
    remove: async (sid, keys) => {
      const s = manager.require(sid);
      await manager.changeSettings(s, {}, keys, `Remove(${keyList(keys)})`);
      return s.snapshot();
    },
    send: async (sid, topic, body, properties, qos) => {
      const s = manager.require(sid);
      s.conn.lastDrop = undefined;
      if (manager.send(s, topic, asBuffer(body), properties, qos)) return;
      const refusal = qos === 1 ? s.conn.outbound?.refusal : undefined;
      if (s.conn.state === State.Connected && refusal) {
        warn?.('limit:outboundQos1', { sessionId: sid, clientId: s.clientId }, `QoS 1 push dropped: ${refusal}`);
        throw new RpcError(`Send: ${refusal} for session ${sid}; dropped (QoS 1)`, 'LIMIT');
      }
      if (s.conn.state === State.Connected && s.conn.lastDrop === 'memory') {
        throw new RpcError(
          `Send: session ${sid}'s client is not reading its output and the gate's unsent output is over maxBufferedBytesTotal; dropped`,
          'LIMIT',
        );
      }
      if (s.conn.state === State.Connected) {
        throw new RpcError(
          `Send: the message is larger than the gate's maxPacketSize or the Maximum Packet Size of session ${sid}'s MQTT 5 client (MQTT-3.1.2-24); dropped`,
          'BAD_ARGUMENT',
        );
      }
      throw new RpcError(`Send: the connection of session ${sid} is closing`, 'NO_SESSION');
    },
    sendBatch: async (ids, topic, body, properties, qos) => manager.sendBatch(ids, topic, asBuffer(body), properties, qos),
    broadcast: async (topic, body, properties, qos) => manager.broadcast(topic, asBuffer(body), properties, qos),
    isConnect: (_sid, userId) => manager.isConnected(userId),
    close: async (sid, reason) => manager.kick(manager.require(sid), reason),
    counts: async () => ({ ...manager.registry.counts(), detached: resume?.detached.size ?? 0 }),
    handOver: (sid, hash) =>
      resume
        ? resume.handOver(sid, hash)
        : Promise.reject(new RpcError(`HandOver: resume is turned off on this gate (session ${sid})`, 'NO_SESSION')),
  };
}
