// Type-checked by the packed-app test with `tsc --noEmit` in an app outside the repository that
// installed the packed tarballs, under moduleResolution node10, node16 (also as check.mts, the
// `import` side of each package) and bundler, with skipLibCheck off: the published .d.ts files
// and every type they reach must resolve for an app that uses the public API.
import { createApp, defineModule, type HandlerContext, type ModuleDefinition } from '@mqgate/client';
import { Gate, type GateAddresses, type GateOptions } from '@mqgate/gate';
import { InProcessTransport, encodeSession, type RpcTransport, type SessionData } from '@mqgate/rpc';
import { RedisTransport, RedisUserIndex } from '@mqgate/rpc/redis';
import { MemoryStorage, StorageError, type StorageHandler } from '@mqgate/storage';
import { loadConfig, NATS_MISSING, type StorageFactory } from '@mqgate/cli';
import { connect, GateError, type ConnectOptions } from '@mqgate/sdk';

/** A StorageHandler of the app's own, over a Map. */
class MapStorage implements StorageHandler {
  private readonly rows = new Map<string, Uint8Array>();
  async storage(session: SessionData): Promise<void> {
    this.rows.set(session.userId, encodeSession(session));
  }
  async delete(session: SessionData): Promise<void> {
    this.rows.delete(session.userId);
  }
  async query(userId: string): Promise<Uint8Array | null> {
    return this.rows.get(userId) ?? null;
  }
  async heartbeat(session: SessionData): Promise<void> {
    if (!this.rows.has(session.userId)) throw new StorageError('heartbeat', session.userId, new Error('gone'));
  }
}

export const factory: StorageFactory = () => new MapStorage();

const hello: ModuleDefinition = defineModule({
  type: 'hello',
  handlers: {
    HD_hi: async (session, payload, _ctx: HandlerContext) => ({ hi: (payload as { name: string }).name, guest: session.isGuest() }),
  },
});

export async function main(): Promise<string> {
  const transport: RpcTransport = new InProcessTransport();
  const options: GateOptions = { tcp: { port: 0 }, websocket: false, storage: new MemoryStorage() };
  const app = createApp({ transport });
  app.module(hello);
  const gate = new Gate(options);
  app.use(gate);
  await app.start();
  const where: GateAddresses = gate.addresses();
  const sdkOptions: ConnectOptions = { reconnect: false };
  const client = await connect(`mqtt://127.0.0.1:${where.tcp?.port}`, sdkOptions);
  const reply = await client.request<{ hi: string }>('hello/HD_hi', { name: 'ts' }).catch((e: unknown) => {
    if (e instanceof GateError) return { hi: e.message };
    throw e;
  });
  await client.close();
  await app.stop();
  return reply.hi;
}

export function redisParts(url: string): [RpcTransport, RedisUserIndex] {
  return [new RedisTransport({ url }), new RedisUserIndex({ url })];
}

export const configured: string = loadConfig(undefined).get<string>('transport.type') + NATS_MISSING;
