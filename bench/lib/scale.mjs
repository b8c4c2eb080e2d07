// @ts-check
// Every count and duration of the suite, per mode (default = the full run, quick, smoke).
// The runner picks one and records it in the JSON (`scale`); each scenario reads its own part.
export const SCALES = {
  default: {
    scenarioLimitMs: 60_000,
    quiet: { perScenarioMs: 10_000, totalMs: 60_000 },
    rr: {
      warmupMs: 250,
      measureMs: 800,
      trials: 3,
      configs: [
        [1, 1],
        [100, 10],
      ],
    },
    // common: the runs at the load common to all servers (shorter: 3 of them fit the 10 min budget).
    open: { conns: 100, warmupMs: 1000, measureMs: 5000, common: { warmupMs: 500, measureMs: 3000 } },
    connrate: { concurrency: 16, warmupMs: 500, measureMs: 3000 },
    fanout: { count: 10_000, rounds: 5 },
    profile: { warmupMs: 500, measureMs: 5000 },
    // 19,744 = the fd cap here (hard limit 20,000 less 256, lib/proc.mjs FD_CAP).
    idle: { counts: [10_000, 19_744] },
    redis: { users: 1000, settings: 3, heartbeatMs: 2000, windowMs: 8000, restoreUsers: 500 },
    resume: { users: 1000, concurrency: 10, memorySessions: 2000, fanoutSessions: 10_000, fanoutRounds: 5, detachedShare: 0.1 },
    // One connection per cell is cheap and its CPU per reply is noisy: more interleaved trials than rr.
    sdk: { trials: 5 },
  },
  quick: {
    scenarioLimitMs: 60_000,
    quiet: { perScenarioMs: 2000, totalMs: 5_000 },
    rr: {
      warmupMs: 150,
      measureMs: 300,
      trials: 1,
      configs: [
        [1, 1],
        [100, 10],
      ],
    },
    open: { conns: 50, warmupMs: 300, measureMs: 1000, common: { warmupMs: 300, measureMs: 1000 } },
    connrate: { concurrency: 16, warmupMs: 200, measureMs: 1000 },
    fanout: { count: 1000, rounds: 2 },
    profile: { warmupMs: 300, measureMs: 1500 },
    idle: { counts: [1000, 5000] },
    redis: { users: 100, settings: 3, heartbeatMs: 500, windowMs: 1000, restoreUsers: 100 },
    resume: { users: 200, concurrency: 10, memorySessions: 500, fanoutSessions: 2000, fanoutRounds: 3, detachedShare: 0.1 },
    sdk: { trials: 2 },
  },
  smoke: {
    scenarioLimitMs: 60_000,
    quiet: { perScenarioMs: 0, totalMs: 0 },
    rr: {
      warmupMs: 50,
      measureMs: 150,
      trials: 1,
      configs: [
        [1, 1],
        [4, 2],
      ],
    },
    open: { conns: 4, warmupMs: 100, measureMs: 400, common: { warmupMs: 100, measureMs: 400 } },
    connrate: { concurrency: 4, warmupMs: 100, measureMs: 300 },
    fanout: { count: 50, rounds: 2 },
    profile: { warmupMs: 100, measureMs: 500 },
    idle: { counts: [20, 50] },
    redis: { users: 10, settings: 2, heartbeatMs: 300, windowMs: 900, restoreUsers: 10 },
    resume: { users: 20, concurrency: 4, memorySessions: 20, fanoutSessions: 50, fanoutRounds: 2, detachedShare: 0.1 },
    sdk: { trials: 1 },
  },
};
