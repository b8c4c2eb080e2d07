/**
 * A real gate for the SDK's tests: an in-process app (gate + modules) on OS-chosen loopback
 * ports, TCP and WebSocket, with a memory StorageHandler so settings survive a login.
 * The modules are small test ones written here (the SDK's tests do not depend on the demo).
 */
import { createApp, defineModule, type App } from '@mqgate/client';
import { Gate, type GateOptions } from '@mqgate/gate';
import { InProcessTransport, MemoryUserIndex, silentLogger } from '@mqgate/rpc';
import { MemoryStorage } from '@mqgate/storage';
import { SignJWT } from 'jose';

export const JWT_SECRET = 'sdk-test-secret-of-at-least-thirty-two-bytes!';

/** A running test gate. `held` releases requests parked by `test/HD_hold`; `calls` counts calls of each test handler. */
export interface TestGate {
  gate: Gate;
  app: App;
  tcpUrl: string;
  wsUrl: string;
  calls: Map<string, number>;
  /** Resolves parked `test/HD_hold` calls with their body. */
  release(): void;
  /** Resolves once `n` `test/HD_hold` calls are parked. */
  parked(n: number): Promise<void>;
  stop(): Promise<void>;
}

function str(p: unknown, key: string): string {
  const v = (p as Record<string, unknown>)?.[key];
  if (typeof v !== 'string') throw new Error(`BAD_ARGUMENT: ${key} must be a string`);
  return v;
}

export async function startTestGate(options: GateOptions = {}): Promise<TestGate> {
  const calls = new Map<string, number>();
  const count = (name: string) => calls.set(name, (calls.get(name) ?? 0) + 1);
  let holds: Array<() => void> = [];
  let parkedWaiters: Array<{ n: number; resolve: () => void }> = [];
  const user = defineModule({
    type: 'user',
    handlers: {
      HD_login: async (session, payload) => {
        await session.bind(str(payload, 'userId'));
        return { userId: session.userId, settings: session.settings };
      },
      HD_set: async (session, payload) => {
        await session.setPush(str(payload, 'key'), str(payload, 'value'));
        return { settings: session.settings };
      },
      HD_get: async (session) => ({ userId: session.userId, sessionId: session.sessionId, settings: session.settings }),
      HD_kick: async (session, payload) => {
        await session.close(str(payload, 'reason'));
        return { kicked: 1 };
      },
    },
  });
  const test = defineModule({
    type: 'test',
    handlers: {
      HD_echo: async (_s, payload) => payload,
      HD_fail: async () => {
        throw new Error('BAD_ARGUMENT: always fails');
      },
      HD_count: async () => {
        count('count');
        return { n: calls.get('count') };
      },
      /** Parks until release(): a request the test can drop the connection under. */
      HD_hold: async (_s, payload) => {
        count('hold');
        const done = new Promise<void>((resolve) => holds.push(resolve));
        for (const w of parkedWaiters.filter((x) => holds.length >= x.n)) w.resolve();
        parkedWaiters = parkedWaiters.filter((x) => holds.length < x.n);
        await done;
        return payload;
      },
      /** `{"topic","body","qos"?}`: pushes to the caller's session. */
      HD_push: async (session, payload) => {
        const p = payload as { topic: string; body: unknown; qos?: 0 | 1 };
        await session.send(p.topic, p.body as Record<string, unknown>, { qos: p.qos ?? 0 });
        return { sent: true };
      },
      /** `{"to","topic","body","qos"?}`: pushes to every session of user `to`, wherever it is (buffered while detached). */
      HD_sendTo: async (_s, payload, ctx) => {
        const p = payload as { to: string; topic: string; body: unknown; qos?: 0 | 1 };
        return { delivered: await ctx.users.sendToUser(p.to, p.topic, p.body as object, undefined, p.qos ?? 0) };
      },
    },
  });
  const transport = new InProcessTransport();
  const userIndex = new MemoryUserIndex();
  const storage = new MemoryStorage({ ttl: 60_000 });
  const app = createApp({ transport, logger: silentLogger, userIndex });
  app.module(user).module(test);
  const gate = new Gate({ tcp: { port: 0, host: '127.0.0.1' }, websocket: { port: 0, host: '127.0.0.1' }, metricsPort: false, storage, ...options });
  app.use(gate);
  await app.start();
  const a = gate.addresses();
  return {
    gate,
    app,
    calls,
    tcpUrl: `mqtt://127.0.0.1:${a.tcp!.port}`,
    wsUrl: `ws://127.0.0.1:${a.websocket!.port}/mqtt`,
    release: () => {
      const h = holds;
      holds = [];
      for (const r of h) r();
    },
    parked: (n) => (holds.length >= n ? Promise.resolve() : new Promise((resolve) => parkedWaiters.push({ n, resolve }))),
    stop: async () => {
      await app.stop();
      await transport.close();
      storage.close();
    },
  };
}

/** An HS256 JWT for `sub`, valid `ttl` s. */
export function signToken(sub: string, ttl = 3600): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ exp: now + ttl, iat: now }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).sign(new TextEncoder().encode(JWT_SECRET));
}
