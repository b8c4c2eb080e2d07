// @ts-check
// The runner's command line: flags, --help, and the mode they select.
import { parseArgs } from 'node:util';

const USAGE = `usage: node bench/run.mjs [--quick | --smoke] [--out DIR] [--md FILE] [--only a,b] [--save-profile] [--profile-baseline FILE]
  default   full suite (< 10 min); writes bench-results/<timestamp>.json and BENCHMARKS.md; without
            --only also bench/history/<YYYY-MM-DD-HHMM>.md (its generated section) and
            bench/history/profile-<YYYY-MM-DD-HHMM>.json (its hot spots)
  --quick   scaled down (< 2 min); writes JSON and bench-results/<timestamp>.md
  --smoke   every scenario for ~1 s with tiny counts (the jest smoke test)
  --out     directory for results (default bench-results/)
  --md      markdown file to write (default: BENCHMARKS.md for the full run only)
  --only    comma-separated scenario name prefixes
  --save-profile      write bench/history/profile-<stamp>.json in any mode (e.g. a quick "before")
  --profile-baseline  the profile summary the report compares against (default: the newest
            bench/history/profile-*.json written before this run)
  --report-from FILE  no run: the report (targets and markdown) of a saved results JSON, written to
            --md FILE (default: BENCHMARKS.md for a full run's JSON, else FILE with .md)
  --pin     pin servers to the last CPU and the load process to the first (taskset); off by default:
            on this 2-vCPU VM pinning made every server 5-15x slower and noisier`;

/** Parsed flags plus `mode` ('default' | 'quick' | 'smoke') and `only` (prefixes or null); exits after --help. */
export function parseCli(argv = process.argv.slice(2)) {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      smoke: { type: 'boolean', default: false },
      out: { type: 'string' },
      md: { type: 'string' },
      only: { type: 'string' },
      pin: { type: 'boolean', default: false },
      'save-profile': { type: 'boolean', default: false },
      'profile-baseline': { type: 'string' },
      'report-from': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (args.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const mode = args.smoke ? 'smoke' : args.quick ? 'quick' : 'default';
  const only = args.only ? args.only.split(',').map((s) => s.trim()) : null;
  return { ...args, mode, only };
}
