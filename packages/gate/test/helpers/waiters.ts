/**
 * Bounded waits shared by the gate tests: timeouts around a promise, "stays open" checks,
 * polling, event-loop turns, and waiters for MQTT.js messages and closes and for the gate's
 * `connect` / `disconnect` events.
 */
import type { MqttClient } from 'mqtt';
import type { SessionData } from '@mqgate/rpc';
import type { Harness } from './harness';

// `within` (a timeout around a promise) and `nextMessage` are shared with the demo's tests.
export { nextMessage, within } from '@mqgate/test-support';

/** True when `closed` has not settled after `ms` (a bounded "stays open" check). */
export async function staysOpen(closed: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const open = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms)));
  const result = await Promise.race([closed.then(() => false), open]);
  clearTimeout(timer);
  return result;
}

/**
 * Bounded polling for time-based behaviour: resolves once `check()` is truthy, rejects
 * with `what` after `timeout` ms.
 */
export async function waitUntil(what: string, check: () => unknown | Promise<unknown>, timeout = 5000, every = 10): Promise<void> {
  const end = Date.now() + timeout;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A bounded yield: lets the event loop run a few turns. */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Resolves when the MQTT.js client's connection has closed (its next `close` event). */
export function closeOf(c: MqttClient): Promise<void> {
  return new Promise<void>((resolve) => c.once('close', () => resolve()));
}

/** Resolves with the session snapshot of the next client to connect to the gate. */
export function nextSession(h: Harness): Promise<SessionData> {
  return new Promise((resolve) => h.gate.once('connect', resolve));
}

/**
 * Resolves with the disconnect reason of that session. The id may be given as a function,
 * read at each `disconnect` event (for an id not known yet when the wait starts).
 */
export function disconnectOf(h: Harness, sessionId: string | (() => string)): Promise<string> {
  const id = typeof sessionId === 'function' ? sessionId : () => sessionId;
  return new Promise((resolve) => {
    const on = (s: SessionData, reason: string) => {
      if (s.sessionId !== id()) return;
      h.gate.off('disconnect', on);
      resolve(reason);
    };
    h.gate.on('disconnect', on);
  });
}
