// Starting what a scenario measures: the Node servers (bench/servers/*.mjs), our own mosquitto
// with its responder, and the one load-generator process (bench/load/load.mjs); optionally
// pinned to CPUs (--pin). One rig per run; every child is registered in proc.mjs.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { NodeChild, PINNING, cpuSeconds, freePort, spawnChild, stopProcess } from './proc.mjs';
import { sleep } from './common.mjs';

const bench = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The mosquitto binary, or undefined (mosquitto rows are then skipped). */
export const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => existsSync(p));

export async function waitPort(port, ms = 10000) {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((r) => {
      const c = connect(port, '127.0.0.1');
      c.on('connect', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${port} after ${ms} ms`);
    await sleep(50);
  }
}

/** Server-side CPU seconds (every pid of the server). */
export const serverCpu = (srv) => srv.pids.reduce((a, p) => a + (cpuSeconds(p) ?? 0), 0);

/**
 * The run's rig. A server is `{kind, tcp, ws, pids, stop(), node?}`; `load()` is the load
 * generator (restarted if it died); `stop()` stops the load generator.
 */
export function createRig({ pin = false } = {}) {
  const srvCpu = pin ? PINNING?.server : undefined;
  const loadCpu = pin ? PINNING?.load : undefined;
  let loadChild;

  async function startNodeServer(kind, config = {}, nodeArgs = []) {
    const s = new NodeChild(kind, join(bench, 'servers', `${kind}.mjs`), { config, nodeArgs, cpu: srvCpu });
    await s.ready;
    return { kind, tcp: s.info.tcp, ws: s.info.ws, pids: [s.pid], stop: () => s.stop(), node: s };
  }

  /** Our own mosquitto on a free port (generated config) + the responder client. */
  async function startMosquitto() {
    const port = await freePort();
    const dir = join(tmpdir(), `mqgate-bench-mosquitto-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        'persistence false',
        'log_dest stderr',
        'log_type error',
        'set_tcp_nodelay true',
        'max_queued_messages 100000',
        '',
      ].join('\n'),
    );
    let stoppingMosquitto = false;
    const broker = spawnChild('mosquitto', [MOSQUITTO, '-c', conf], { ipc: false, cpu: srvCpu });
    broker.exited.then(({ code, signal }) => {
      if (!stoppingMosquitto) console.error(`  mosquitto exited (${signal ?? code})`);
    });
    await waitPort(port);
    const responder = new NodeChild('responder', join(bench, 'servers', 'responder.mjs'), { config: { brokerPort: port }, cpu: srvCpu });
    await responder.ready;
    return {
      kind: 'mosquitto',
      tcp: port,
      ws: undefined,
      pids: [broker.pid, responder.pid],
      stop: async () => {
        stoppingMosquitto = true;
        await responder.stop();
        await stopProcess(broker, 3000, 'SIGTERM');
      },
    };
  }

  return {
    startNodeServer,
    startServer: (kind, config) => (kind === 'mosquitto' ? startMosquitto() : startNodeServer(kind, config)),
    async load() {
      if (!loadChild || loadChild.child.exitCode !== null || loadChild.child.signalCode !== null) {
        loadChild = new NodeChild('load', join(bench, 'load', 'load.mjs'), { cpu: loadCpu });
        await loadChild.ready;
      }
      return loadChild;
    },
    async stop() {
      if (loadChild) await loadChild.stop();
    },
  };
}
