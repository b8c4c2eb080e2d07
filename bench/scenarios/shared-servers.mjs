// @ts-check
// The servers that request-reply, open-loop, connection rate and push fan-out share (mqgate,
// aedes, bare, and mosquitto when installed), and the two scenarios that start and stop them.
//
// Needs: rig. A scenario that uses the shared servers declares `servers` and calls
// `servers.ensure()`: in a full run setup has started them already; with --only and no setup
// the first such scenario starts them (its time includes that). Teardown stops them so the
// scenarios after it have the machine to themselves; the runner stops any still running.
import { MOSQUITTO } from '../lib/rig.mjs';

const KINDS = ['mqgate', 'aedes', 'bare', 'mosquitto'].filter((k) => k !== 'mosquitto' || MOSQUITTO);

/** The run's shared servers: `ensure()` → Map kind → server (started once), `stopAll()`. */
export function sharedServers(rig) {
  const running = new Map();
  let started = false;
  return {
    async ensure() {
      if (!started) {
        started = true;
        await rig.load();
        for (const k of KINDS) running.set(k, await rig.startServer(k));
      }
      return running;
    },
    /** Stops every shared server; returns how many there were. */
    async stopAll() {
      const n = running.size;
      for (const [k, s] of running) {
        await s.stop();
        running.delete(k);
      }
      started = false;
      return n;
    },
  };
}

export function setup() {
  return {
    name: 'setup: start servers (mqgate, aedes, bare, mosquitto)',
    needs: ['servers'],
    async run({ servers }) {
      const running = await servers.ensure();
      const notes = MOSQUITTO ? '' : ' (no mosquitto binary: mosquitto rows skipped)';
      return {
        data: { servers: Object.fromEntries([...running].map(([k, s]) => [k, { pids: s.pids, tcp: s.tcp, ws: s.ws }])) },
        summary: `${[...running.keys()].join(', ')} ready${notes}`,
      };
    },
  };
}

export function teardown() {
  return {
    name: 'teardown: stop servers',
    needs: ['servers'],
    async run({ servers }) {
      const n = await servers.stopAll();
      return { data: { stopped: n }, summary: `${n} stopped` };
    },
  };
}
