// @ts-check
// A V8 CPU profile of mqgate under closed-loop load (QoS 0, 64 B, the larger connection count),
// one scenario per transport, on a gate of its own started with --cpu-prof; hot spots by self time.
//
// Needs: rig, profileDir (where the .cpuprofile files go), root (the repository, for the
// profile's file names).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmt } from '../lib/common.mjs';
import { analyzeProfile } from '../lib/profile.mjs';

function profile(scale, transport) {
  const [conns, inflight] = scale.rr.configs[1];
  return {
    name: `profile: mqgate --cpu-prof, ${transport} ${conns}x${inflight} QoS 0 64B`,
    needs: ['rig', 'profileDir', 'root'],
    async run({ rig, profileDir, root }) {
      mkdirSync(profileDir, { recursive: true });
      const name = `mqgate-${transport}.cpuprofile`;
      const srv = await rig.startNodeServer('mqgate', {}, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}`]);
      const l = await rig.load();
      let r;
      try {
        r = await l.request('rr', {
          target: { transport, port: transport === 'ws' ? srv.ws : srv.tcp },
          conns,
          inflight,
          qos: 0,
          payloadSize: 64,
          warmupMs: scale.profile.warmupMs,
          measureMs: scale.profile.measureMs,
        });
      } finally {
        await srv.stop();
      }
      const file = join(profileDir, name);
      if (!existsSync(file)) throw new Error(`no profile written (${file})`);
      const analysis = analyzeProfile(JSON.parse(readFileSync(file, 'utf8')), root);
      return {
        data: { file, rateUnderProfiler: r.rate, ...analysis },
        summary: `${fmt(r.rate)}/s under the profiler; top: ${analysis.functions
          .slice(0, 3)
          .map((f) => `${f.name} ${f.share}%`)
          .join(', ')}`,
      };
    },
  };
}

export function profileScenarios(scale) {
  return ['tcp', 'ws'].map((transport) => profile(scale, transport));
}
