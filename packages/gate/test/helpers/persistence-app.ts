/**
 * The app the persistence tests drive: a gate (with a CountingStorage unless told otherwise)
 * and a module `m` whose handlers run Session verbs (@mqgate/client) on the request's
 * session, and MQTT.js peers that call them. Start one per test with
 * {@link startPersistenceApp}; `afterEach(stopPersistenceApps)` stops them all.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { Session } from '@mqgate/client';
import type { GateOptions } from '@mqgate/gate';
import type { RpcValue, SessionData } from '@mqgate/rpc';
import { CountingStorage } from './counting-storage';
import { mqttConnect, startGate, type Harness } from './harness';

/** A session as the test module saw it. */
export interface View {
  userId: string;
  sessionId: string;
  settings: Record<string, string>;
}
/** The outcome of one Session verb run by the module. */
export type Outcome = { ok: true; value: unknown } | { ok: false; code: string; message: string };
/** What HD_run answers: each verb's outcome and the session after them. */
export interface RunResult {
  results: Outcome[];
  session: View;
}
/** A Session verb the test module runs: [verb, ...args]. */
export type Step = [string, ...unknown[]];

/** A copy of the parts of a session the tests compare. */
function view(d: SessionData): View {
  return { userId: d.userId, sessionId: d.sessionId, settings: { ...d.settings } };
}

/** Runs one Session verb, catching its error as an Outcome. */
async function runStep(s: Session, [verb, ...a]: Step): Promise<Outcome> {
  try {
    let value: unknown = null;
    switch (verb) {
      case 'bind':
        value = await s.bind(a[0] as string);
        break;
      case 'unbind':
        await s.unbind((a[0] ?? {}) as { delete?: boolean });
        break;
      case 'set':
        await s.set(a[0] as string, a[1] as string);
        break;
      case 'setPush':
        await s.setPush(a[0] as string, a[1] as string);
        break;
      case 'setBatch':
        await s.setBatch(a[0] as Record<string, string>);
        break;
      case 'remove':
        await s.remove(a[0] as string);
        break;
      case 'setLocal':
        s.setLocal(a[0] as string, a[1] as string);
        break;
      case 'removeLocal':
        s.removeLocal(a[0] as string);
        break;
      case 'push':
        await s.push();
        break;
      case 'update':
        await s.update();
        break;
      case 'isConnect':
        value = await s.isConnect(a[0] as string);
        break;
      default:
        throw new Error(`unknown step ${verb}`);
    }
    return { ok: true, value };
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { ok: false, code: e.code ?? '', message: e.message };
  }
}

/** A started app: the gate harness, its store, and the peers opened through `peer()`. */
export interface Env {
  h: Harness;
  store: CountingStorage;
  peers: Peer[];
  peer(opts?: IClientOptions): Promise<Peer>;
}

let msgSeq = 0;

/** An MQTT.js client of the app: requests to module `m`, with its session id in `sid`. */
export class Peer {
  private waiters: Array<{ topic: string; resolve: (b: Buffer) => void }> = [];
  sid = '';
  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      this.waiters = this.waiters.filter((w) => (w.topic === topic ? (w.resolve(payload), false) : true));
    });
  }
  /** Publishes a request; the promise resolves with the reply's Result (rejects on an Error reply). */
  request(handler: string, body: unknown = {}): Promise<unknown> {
    const topic = `m/${handler}/${++msgSeq}`;
    const reply = new Promise<Buffer>((resolve) => this.waiters.push({ topic, resolve }));
    this.client.publish(topic, JSON.stringify(body));
    return reply.then((b) => {
      const env = JSON.parse(b.toString('utf8')) as { Error: string; Result: unknown };
      if (env.Error !== '') throw new Error(`reply error: ${env.Error}`);
      return env.Result;
    });
  }
  run(steps: Step[], parallel = false): Promise<RunResult> {
    return this.request('HD_run', { steps, parallel }) as Promise<RunResult>;
  }
  snap(): Promise<View> {
    return this.request('HD_snap') as Promise<View>;
  }
  /** Destroys the socket: no DISCONNECT packet. */
  kill(): void {
    this.client.stream.destroy();
  }
  async end(): Promise<void> {
    if (this.client.connected) await this.client.endAsync();
    else this.client.end(true);
  }
}

/** Throws unless the outcome is a success. */
export function ok(r: Outcome): void {
  if (!r.ok) throw new Error(`expected success, got ${r.code}: ${r.message}`);
}

const envs: Env[] = [];

/**
 * Starts a gate (storage: a fresh CountingStorage, left out of the gate when `withStore` is
 * false) serving module `m`: HD_snap (the session as the module sees it), HD_echo ('pong'),
 * HD_run (Session verbs, in order or `parallel`).
 */
export async function startPersistenceApp(options: GateOptions = {}, withStore = true): Promise<Env> {
  const store = new CountingStorage();
  const h = await startGate({ ...(withStore ? { storage: store } : {}), ...options });
  await h.serve('m', async (fn, args) => {
    const data = args[0] as SessionData;
    const body = args[1] as { steps?: Step[]; parallel?: boolean };
    switch (fn) {
      case 'HD_snap':
        return view(data) as unknown as RpcValue;
      case 'HD_echo':
        return 'pong';
      case 'HD_run': {
        const s = new Session(data, h.transport);
        const steps = body.steps ?? [];
        const results: Outcome[] = [];
        if (body.parallel) results.push(...(await Promise.all(steps.map((st) => runStep(s, st)))));
        else for (const st of steps) results.push(await runStep(s, st));
        return { results, session: view(s.toData()) } as unknown as RpcValue;
      }
      default:
        throw new Error(`no handler ${fn}`);
    }
  });
  const env: Env = {
    h,
    store,
    peers: [],
    async peer(opts = {}) {
      const p = new Peer(await mqttConnect(h.tcpUrl, opts));
      env.peers.push(p);
      p.sid = (await p.snap()).sessionId;
      return p;
    },
  };
  envs.push(env);
  return env;
}

/** Stops every app started since the last call: ends its peers, stops the gate, closes the store. */
export async function stopPersistenceApps(): Promise<void> {
  for (const env of envs.splice(0)) {
    await Promise.all(env.peers.map((p) => p.end()));
    await env.h.stop();
    await env.store.close();
  }
}
