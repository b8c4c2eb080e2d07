import { randomBytes } from 'node:crypto';
import { makeSessionData, type SessionData } from '@mqgate/rpc';

/** The backend Session's local copy: edits not yet pushed, and copies with fields replaced. */

/** A local edit not yet sent to the gate. Each edit is a new object, so identity tells edits apart. */
export type Pending = { readonly op: 'set'; readonly value: string } | { readonly op: 'remove' };

/** A new SessionData: `base` with some fields replaced. */
export function withFields(base: SessionData, patch: Partial<SessionData>): SessionData {
  return makeSessionData({
    ip: base.ip,
    network: base.network,
    userId: base.userId,
    sessionId: base.sessionId,
    serverId: base.serverId,
    traceId: base.traceId,
    spanId: base.spanId,
    settings: base.settings,
    topic: base.topic,
    protocolVersion: base.protocolVersion,
    mqtt5: base.mqtt5,
    carrier: base.carrier,
    unknownFields: base.unknownFields,
    ...patch,
  });
}

/** A new settings map: `settings` with the edits applied. */
export function applyEdits(settings: Readonly<Record<string, string>>, edits: Iterable<readonly [string, Pending]>): Record<string, string> {
  const out: Record<string, string> = { ...settings };
  for (const [key, p] of edits) {
    if (p.op === 'set') define(out, key, p.value);
    else delete out[key];
  }
  return out;
}

/** `obj[key] = value` that also works for keys such as `__proto__`. */
export function define(obj: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

export function newSpanId(): string {
  return randomBytes(8).toString('hex');
}
