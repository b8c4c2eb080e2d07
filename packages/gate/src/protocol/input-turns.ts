import { performance } from 'node:perf_hooks';

/**
 * Bounds on the PUBLISH packets (requests: decoded, routed, answered) the gate parses from its
 * clients per turn of the event loop, so that no turn does work proportional to what clients
 * have pipelined, and a fair share of each turn per connection, so that one connection's
 * backlog cannot take a turn from the others (control packets are answered in one batched
 * write per parse batch and bounded by messageRate; they do not count).
 *
 * A turn runs from one `setImmediate` (the check phase) to the next. It ends early once it has
 * parsed {@link PUBLISHES_PER_TURN} PUBLISHes or used {@link TURN_BUDGET_MS} ms of CPU since its
 * first one (the clock sees the dispatch too: an in-process module answers in microtasks,
 * which run between the I/O callbacks that parse). While other connections wait, a connection
 * parses at most {@link PUBLISHES_PER_SLICE} per visit. Past either bound, the connection's
 * unparsed input is held (held-input.ts), its wire paused, and it waits: in the `cut` queue
 * when the turn ended under it (it goes first next turn: a client whose request merely came in
 * late, such as an honest one next to attackers), in the `backlog` queue when it used its
 * slice (to the back: round robin over the connections with input pending). Each turn resumes
 * the waiting connections in that order, each with a new slice, until the turn's bounds, or
 * {@link PUBLISHES_PER_SERVE} PUBLISHes were parsed by the resumed ones (their dispatch runs
 * after this synchronous loop, out of the clock's sight, so that part is bounded by count).
 *
 * Honest load is not throttled: a connection with a few requests per turn never uses a slice,
 * and a turn of honest work rarely lasts {@link TURN_BUDGET_MS}. Reading a connection's
 * backlog was unbounded in one turn before (a request answered in microtasks resumes reading,
 * which parses the next one, and so on for all a client had sent: 200 WebSocket clients
 * pipelining requests held the event loop for seconds); a per-process count alone (1024 a turn)
 * still let one event-loop iteration parse and dispatch 2 048, 130-400 ms on a loaded machine.
 * Per process, as the event loop is: every gate of a process shares it.
 */

/** PUBLISH packets parsed per turn at most, across connections: 1024 (a backstop; the clock usually ends a busy turn first). */
export const PUBLISHES_PER_TURN = 1024;

/**
 * CPU ms a turn may spend parsing and dispatching PUBLISHes, from its first one: 10. An
 * event-loop iteration holds at most about two turns (one in the I/O phase, one in the check
 * phase). Measured on the shared 2-core machine (load 4-15) with `node bench/attack/ws-pipeline.mjs
 * 200 15`: the most gate CPU in one stall fell from 74-195 ms (1024 a turn, no clock) to 0-40 ms,
 * every stall left over 100 ms being the host not running the gate (at most 40 ms CPU in it),
 * and the probe's p99 from 104-521 ms to 31-107 ms;
 * with `node bench/run.mjs --quick --only open-loop`, p99 at 50 % of peak was 6-64 ms before
 * and 6-366 ms after (7 and 10 runs, 0.4-30 k requests/s): the machine's noise, as in five
 * counted runs 0-1 of the 1 700-17 000 open-loop requests waited for a later turn (the
 * saturated peak probe before them hit the 1024 count, as it did without the clock).
 */
export const TURN_BUDGET_MS = 10;

/**
 * Wall ms a turn lasts before the process's CPU is first sampled: 1. A turn shorter than that
 * (every turn of light load: 1 × 1 has one PUBLISH a turn) asks the kernel nothing; sampling at
 * each turn's first PUBLISH was one getrusage system call per request, 3.75 % of the gate's CPU
 * at tcp 1 × 1 (perf). The wall time before the first sample is charged as CPU, at most this
 * same 1 ms: a turn that was busy that long used about that much, and the
 * cap keeps wall time (a host not running the process, the loop's other phases) from cutting
 * honest load: charging up to 5 ms raised open-loop p99 at 85 k requests/s from 33-54 ms to
 * 76-127 ms (`node bench/run.mjs --only open-loop`, 2 runs each).
 */
export const CPU_SAMPLE_AFTER_MS = 1;

/** PUBLISH packets a connection parses per visit while other connections wait: 32 (above maxInflight's default 20, so one parse batch fits). */
export const PUBLISHES_PER_SLICE = 32;

/** PUBLISH packets the connections resumed by a turn may parse before the turn stops resuming more: 256. */
export const PUBLISHES_PER_SERVE = 256;

/** A connection that parses PUBLISHes (MqttConnection): its share of the turn is kept here. */
export interface TurnWaiter {
  /** @internal The turn its slice belongs to (see InputTurns). */
  turnId: number;
  /** @internal PUBLISHes it may still parse in its slice. */
  turnSlice: number;
  /** Its turn: parse what it holds (within the new slice). */
  resumeTurn(): void;
}

class InputTurns {
  /** PUBLISH packets that may still be parsed in this turn. */
  private left = PUBLISHES_PER_TURN;
  /** performance.now() of the turn's first PUBLISH, or 0 before it. */
  private startedAt = 0;
  /** The process's CPU ms at the turn's first CPU sample (see {@link cpuMs}), or NaN before it. */
  private cpuAtSample = NaN;
  /** The wall ms from the turn's first PUBLISH to its first CPU sample, charged as CPU (capped). */
  private preSampleMs = 0;
  /** performance.now() before which the turn's CPU cannot have reached the budget (the CPU is not asked before). */
  private checkAt = 0;
  /** Numbers the turns, so a slice from an earlier turn is known as spent. */
  private id = 1;
  /** Waiting because the turn ended under them, in order (a Set keeps insertion order). */
  private readonly cut = new Set<TurnWaiter>();
  /** Waiting because they used their slice, in order. */
  private readonly backlog = new Set<TurnWaiter>();
  private scheduled = false;

  /**
   * PUBLISH packets `w` may parse now (a parse batch's bound); 0: it must hold its input and
   * {@link wait}.
   */
  allowance(w: TurnWaiter): number {
    if (this.exhausted()) {
      this.left = 0;
      return 0;
    }
    if (w.turnId !== this.id) {
      w.turnId = this.id;
      w.turnSlice = PUBLISHES_PER_SLICE;
    }
    const others = this.cut.size + this.backlog.size;
    if (others === 0) return this.left; // alone: the turn's bounds only
    return Math.min(this.left, w.turnSlice);
  }

  /** `w` parsed `n` PUBLISH packets now. */
  spend(w: TurnWaiter, n: number): void {
    if (n === 0) return;
    if (this.startedAt === 0) {
      this.startedAt = performance.now();
      this.cpuAtSample = NaN;
      this.checkAt = this.startedAt + CPU_SAMPLE_AFTER_MS;
    }
    this.left -= n;
    w.turnSlice -= n;
    this.schedule();
  }

  /** `w` got no allowance: resumed in a later turn, ahead of the backlog if the turn ended under it. */
  wait(w: TurnWaiter): void {
    this.cut.delete(w);
    this.backlog.delete(w);
    if (w.turnId === this.id && w.turnSlice <= 0) this.backlog.add(w);
    else this.cut.add(w);
    this.schedule();
  }

  /** `w` has closed: it waits no longer. */
  forget(w: TurnWaiter): void {
    this.cut.delete(w);
    this.backlog.delete(w);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(nextTurn);
  }

  /** @internal A new turn: new bounds, and the waiting connections resumed in order while they last. */
  turn(): void {
    this.scheduled = false;
    this.id++;
    this.left = PUBLISHES_PER_TURN;
    this.startedAt = 0;
    if (this.serve(this.cut)) this.serve(this.backlog);
    if (this.cut.size + this.backlog.size > 0) this.schedule();
  }

  /** Resumes the connections of `queue` in order, each with a new slice; false once the turn stops resuming. */
  private serve(queue: Set<TurnWaiter>): boolean {
    for (const w of [...queue]) {
      if (this.left <= PUBLISHES_PER_TURN - PUBLISHES_PER_SERVE || this.exhausted()) return false;
      queue.delete(w);
      w.turnId = this.id;
      w.turnSlice = PUBLISHES_PER_SLICE;
      w.resumeTurn();
    }
    return true;
  }

  /**
   * The turn's count is spent, or it has used {@link TURN_BUDGET_MS} ms of CPU since its first
   * PUBLISH. CPU, not wall time: the loop waiting for I/O (a turn begun in the check phase goes
   * on into the next iteration's I/O phase) or the host not running the process (a loaded
   * machine, a container at its CPU quota) is not the turn's work, and counting it cut honest
   * load (open-loop p99 90-222 ms on the loaded machine). The CPU is asked for (a system call,
   * about 1 µs) first {@link CPU_SAMPLE_AFTER_MS} after the turn's first PUBLISH, then only once
   * enough wall time has passed for the rest of the budget to be used: never in a short turn,
   * at most about once per ms of a long one.
   */
  private exhausted(): boolean {
    if (this.left <= 0) return true;
    if (this.startedAt === 0) return false;
    const now = performance.now();
    if (now < this.checkAt) return false;
    let used: number;
    if (Number.isNaN(this.cpuAtSample)) {
      this.cpuAtSample = cpuMs();
      this.preSampleMs = Math.min(now - this.startedAt, CPU_SAMPLE_AFTER_MS);
      used = this.preSampleMs;
    } else {
      used = this.preSampleMs + cpuMs() - this.cpuAtSample;
    }
    if (used >= TURN_BUDGET_MS) return true;
    this.checkAt = now + Math.max(0.5, TURN_BUDGET_MS - used);
    return false;
  }
}

/** CPU ms (user + system) the process has used so far; its other threads (GC helpers) count too. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** The process's input turns (one event loop per process). */
export const inputTurns = new InputTurns();

function nextTurn(): void {
  inputTurns.turn();
}
