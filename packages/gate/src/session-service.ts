import { GateFunctions, RpcError, type RpcHandler, type RpcValue } from '@mqgate/rpc';
import type { SessionManager } from './session-manager';

function bad(fn: string, what: string): RpcError {
  return new RpcError(`${fn}: ${what}`, 'BAD_ARGUMENT');
}

function str(fn: string, args: RpcValue[], i: number, name: string, allowEmpty = false): string {
  const v = args[i];
  if (typeof v !== 'string' || (!allowEmpty && v === '')) throw bad(fn, `argument ${i} (${name}) must be a non-empty string`);
  return v;
}

function topicArg(fn: string, args: RpcValue[], i: number): string {
  const t = str(fn, args, i, 'topic');
  if (t.includes('+') || t.includes('#')) throw bad(fn, `topic ${JSON.stringify(t)} must not hold a wildcard`);
  return t;
}

/** A push body: bytes as they are, a string as UTF-8, anything else as JSON. */
function bodyArg(fn: string, args: RpcValue[], i: number): Buffer {
  const v = args[i];
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (v === undefined) throw bad(fn, `argument ${i} (body) is missing`);
  return Buffer.from(JSON.stringify(v));
}

function settingsArg(fn: string, args: RpcValue[], i: number): Record<string, string> {
  const v = args[i];
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
    throw bad(fn, `argument ${i} (settings) must be an object of strings`);
  }
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw bad(fn, `setting ${JSON.stringify(k)} must be a string, got ${typeof val}`);
  }
  return v as Record<string, string>;
}

function keysArg(fn: string, args: RpcValue[], i: number): string[] {
  const v = args[i];
  const keys = Array.isArray(v) ? v : [v];
  if (keys.length === 0 || keys.some((k) => typeof k !== 'string' || k === '')) {
    throw bad(fn, `argument ${i} (key) must be a non-empty string or a list of them`);
  }
  return keys as string[];
}

/**
 * The gate's session service (rpc gate-api.ts): decodes and checks the arguments of each
 * function, then runs it on the SessionManager. Bad arguments fail with code BAD_ARGUMENT,
 * an unknown session id with NO_SESSION; the gate itself never fails for a bad call.
 */
export function sessionService(manager: SessionManager): RpcHandler {
  const F = GateFunctions;
  const handlers: Record<string, (args: RpcValue[]) => RpcValue | Promise<RpcValue>> = {
    [F.Update]: (a) => manager.require(str(F.Update, a, 0, 'sessionId')).snapshot(),
    [F.Bind]: async (a) => {
      const s = manager.require(str(F.Bind, a, 0, 'sessionId'));
      await manager.bind(s, str(F.Bind, a, 1, 'userId'));
      return s.snapshot();
    },
    [F.UnBind]: async (a) => {
      const s = manager.require(str(F.UnBind, a, 0, 'sessionId'));
      const del = a[1];
      if (del !== undefined && del !== null && typeof del !== 'boolean') throw bad(F.UnBind, 'argument 1 (delete) must be a boolean');
      await manager.unbind(s, del === true);
      return s.snapshot();
    },
    [F.Push]: async (a) => {
      const s = manager.require(str(F.Push, a, 0, 'sessionId'));
      const settings = settingsArg(F.Push, a, 1);
      await manager.changeSettings(s, settings, [], `Push(${Object.keys(settings).map((k) => JSON.stringify(k)).join(', ')})`);
      return s.snapshot();
    },
    [F.Set]: async (a) => {
      const s = manager.require(str(F.Set, a, 0, 'sessionId'));
      const key = str(F.Set, a, 1, 'key');
      await manager.changeSettings(s, { [key]: str(F.Set, a, 2, 'value', true) }, [], `Set(${JSON.stringify(key)})`);
      return s.snapshot();
    },
    [F.Remove]: async (a) => {
      const s = manager.require(str(F.Remove, a, 0, 'sessionId'));
      const keys = keysArg(F.Remove, a, 1);
      await manager.changeSettings(s, {}, keys, `Remove(${keys.map((k) => JSON.stringify(k)).join(', ')})`);
      return s.snapshot();
    },
    [F.Send]: (a) => {
      const s = manager.require(str(F.Send, a, 0, 'sessionId'));
      if (!manager.send(s, topicArg(F.Send, a, 1), bodyArg(F.Send, a, 2))) {
        throw new RpcError(`Send: the connection of session ${s.sessionId} is closing`, 'NO_SESSION');
      }
      return null;
    },
    [F.SendBatch]: (a) => {
      const ids = Array.isArray(a[0]) ? (a[0] as unknown[]) : str(F.SendBatch, a, 0, 'sessionIds', true).split(',');
      const topic = topicArg(F.SendBatch, a, 1);
      const body = bodyArg(F.SendBatch, a, 2);
      let n = 0;
      for (const id of ids) {
        const s = typeof id === 'string' ? manager.registry.get(id.trim()) : undefined;
        if (s && manager.send(s, topic, body)) n++;
      }
      return n;
    },
    [F.BroadCast]: (a) => manager.broadcast(topicArg(F.BroadCast, a, 0), bodyArg(F.BroadCast, a, 1)),
    [F.Counts]: () => ({ ...manager.registry.counts() }),
    [F.IsConnect]: (a) => manager.isConnected(str(F.IsConnect, a, 1, 'userId')),
    [F.Close]: (a) => {
      const s = manager.require(str(F.Close, a, 0, 'sessionId'));
      const reason = a[1];
      if (reason !== undefined && reason !== null && typeof reason !== 'string') throw bad(F.Close, 'reason must be a string');
      manager.kick(s, reason ?? undefined);
      return null;
    },
  };
  return (fn, args) => {
    const h = Object.hasOwn(handlers, fn) ? handlers[fn] : undefined;
    if (!h) throw new RpcError(`Method(${fn}) not found in the gate's session service`, 'NOT_FOUND');
    return h(args);
  };
}
