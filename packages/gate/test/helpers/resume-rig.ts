import { Gate, type GateOptions } from '@mqgate/gate';
import { gateClient, InProcessTransport, MemoryUserIndex, silentLogger, type SessionData } from '@mqgate/rpc';
import type { ResumePeer } from './resume-peer';

/** The fixture of the resume suites: a fresh transport and user index per test, with a `user` module that binds. */
export interface ResumeRig {
  readonly transport: InProcessTransport;
  readonly index: MemoryUserIndex;
  /** A started gate on a loopback port (TCP only) sharing the rig's transport and index; stopped after the test. */
  gate(serverId: string, options?: GateOptions): Promise<Gate>;
  /** Ends `peer`'s client after the test; returns it. */
  track(peer: ResumePeer): ResumePeer;
  url(g: Gate): string;
}

/**
 * Registers the suite's beforeEach / afterEach: each test gets a new InProcessTransport and
 * MemoryUserIndex, and `user@1` serving any handler as a Bind of `args[1].userId`. Gates and
 * tracked peers are closed after each test.
 */
export function resumeRig(defaults: GateOptions = {}): ResumeRig {
  let transport: InProcessTransport;
  let index: MemoryUserIndex;
  const gates: Gate[] = [];
  const peers: ResumePeer[] = [];
  beforeEach(async () => {
    transport = new InProcessTransport();
    index = new MemoryUserIndex();
    await transport.serve({ serverId: 'user@1', moduleType: 'user' }, async (_fn, args) => {
      const s = args[0] as SessionData;
      const bound = await gateClient(transport, s.serverId).bind(s.sessionId, (args[1] as { userId: string }).userId);
      return { sessionId: bound.sessionId };
    });
  });
  afterEach(async () => {
    await Promise.all(peers.splice(0).map((p) => p.client.endAsync(true)));
    await Promise.all(gates.splice(0).map((g) => g.stop()));
    await transport.close();
  });
  return {
    get transport() {
      return transport;
    },
    get index() {
      return index;
    },
    async gate(serverId, options = {}) {
      const g = new Gate({ tcp: { port: 0, host: '127.0.0.1' }, websocket: false, userIndex: index, serverId, ...defaults, ...options });
      gates.push(g);
      await g.start({ transport, logger: silentLogger, userIndex: index });
      return g;
    },
    track(peer) {
      peers.push(peer);
      return peer;
    },
    url: (g) => `mqtt://127.0.0.1:${g.addresses().tcp!.port}`,
  };
}
