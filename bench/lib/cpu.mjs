// @ts-check
// CPU seconds of a process from /proc (Linux), read by the runner and by the load process (which
// samples the servers' CPU at the exact edges of a measured window). Resolution: USER_HZ ticks (10 ms).
import { readFileSync } from 'node:fs';

/** CPU seconds (user+system) of a pid from /proc, or null. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, USER_HZ = 100
  } catch {
    return null;
  }
}

/** CPU seconds of each pid of `pids` (null where unreadable). */
export const cpuOf = (pids) => pids.map((p) => cpuSeconds(p));
