// @ts-check
// Running the scenarios in order: selection by --only prefixes, the quiet wait before each,
// the time limit, the other processes' CPU meanwhile, the progress line, the JSON entry.
//
// A scenario is `{ name, needs, run(inputs) }`. `needs` names the run resources it uses (the
// keys of `resources`: rig, servers, closedLoopCells, redis, profileDir, root); `run` gets
// `{ deadline, ...those resources }` and nothing else, and returns `{ data, summary?,
// truncated? }` or `{ skipped: reason }`; a throw marks the scenario failed.
import { machineBusySeconds, ourCpuSeconds } from './proc.mjs';

function inputsOf(s, resources) {
  const inputs = {};
  for (const n of s.needs ?? []) {
    if (!(n in resources)) throw new Error(`scenario "${s.name}" needs "${n}", which the runner does not provide`);
    inputs[n] = resources[n];
  }
  return inputs;
}

/** Runs the scenarios of `plan` that `only` selects (all when null), filling `entries[name]`. */
export async function runPlan(plan, { only, limitMs, waitQuiet, resources, entries }) {
  const selected = plan.filter((s) => !only || only.some((o) => s.name.startsWith(o)));
  for (const s of plan) inputsOf(s, resources); // every declared need exists, before anything runs
  let index = 0;
  for (const s of selected) {
    index++;
    const t0 = Date.now();
    const deadline = t0 + limitMs;
    process.stdout.write(`[${index}/${selected.length}] ${s.name} ... `);
    const entry = { status: 'ok', startedAt: new Date().toISOString() };
    entries[s.name] = entry;
    const quiet = await waitQuiet();
    if (quiet) entry.before = quiet;
    const busy0 = machineBusySeconds();
    const ours0 = ourCpuSeconds();
    try {
      const out = await s.run({ deadline, ...inputsOf(s, resources) });
      if (out && out.skipped) {
        entry.status = 'skipped';
        entry.note = out.skipped;
      } else {
        entry.data = out?.data ?? out;
        if (out?.summary) entry.summary = out.summary;
        if (out?.truncated) entry.note = `truncated: reached the ${limitMs / 1000} s scenario limit`;
      }
    } catch (err) {
      entry.status = 'failed';
      entry.error = err instanceof Error ? err.message : String(err);
    }
    entry.seconds = Math.round((Date.now() - t0) / 100) / 10;
    const busy1 = machineBusySeconds();
    if (busy0 !== null && busy1 !== null) {
      // CPU of processes not started by this run while the scenario ran (other users of the machine).
      entry.foreignCores = Math.round((Math.max(0, busy1 - busy0 - (ourCpuSeconds() - ours0)) / Math.max(0.1, (Date.now() - t0) / 1000)) * 100) / 100;
    }
    const line =
      entry.status === 'ok'
        ? `ok (${entry.seconds} s${entry.foreignCores >= 0.1 ? `, other processes used ${entry.foreignCores} cores meanwhile` : ''})${entry.summary ? `: ${entry.summary}` : ''}${entry.note ? ` [${entry.note}]` : ''}`
        : entry.status === 'skipped'
          ? `skipped: ${entry.note}`
          : `FAILED (${entry.seconds} s): ${entry.error}`;
    console.log(line);
  }
}
