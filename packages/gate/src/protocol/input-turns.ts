/**
 * A bound on the PUBLISH packets (requests: decoded, routed, answered) the gate parses from
 * its clients per turn of the event loop, across all its connections, so that no turn does
 * work proportional to what clients have pipelined (control packets are answered in one
 * batched write per parse batch and bounded by messageRate; they do not count). A
 * connection parses at most the turn's allowance; past it, its unparsed input
 * is held, its wire paused, and it waits in a queue; each turn (a `setImmediate`) starts a
 * new allowance and resumes the waiting connections in order (first to wait, first served;
 * one that runs out again goes to the back). Reading a connection's backlog was unbounded
 * in one turn: a request answered by an in-process module completes in microtasks, whose
 * end resumes reading, which parses the next request, and so on for everything a client had
 * sent, so 200 WebSocket clients pipelining requests held the event loop for seconds. Per
 * process, as the event loop is: every gate of a process shares it.
 */

/**
 * PUBLISH packets parsed per turn of the event loop, across connections: 1024. Measured on the
 * loaded 2-core machine (`node bench/attack/ws-pipeline.mjs 200 15` and `node bench/run.mjs
 * --only open-loop`): 128 held the attack to p99 25 ms with no stall, but throttled honest
 * load (open-loop p99 at 50 % of peak 446-769 ms, against 23 ms without a cap); 512 still
 * gave 178 ms; 1024 gives open-loop p99 40 ms and the attack p99 31 ms with a few 130-180 ms
 * turns in its first second. A cap per connection (fair share) instead of per process is the
 * better shape and is left to do.
 */
export const PUBLISHES_PER_TURN = 1024;

/** A connection waiting for its turn (MqttConnection). */
export interface TurnWaiter {
  /** Its turn: parse what it holds (within the new allowance). */
  resumeTurn(): void;
}

class InputTurns {
  /** PUBLISH packets that may still be parsed in this turn. */
  left = PUBLISHES_PER_TURN;
  /** Connections waiting, in order (a Set keeps insertion order). */
  private readonly waiting = new Set<TurnWaiter>();
  private scheduled = false;

  /** `n` PUBLISH packets were parsed now. */
  spend(n: number): void {
    if (n === 0) return;
    this.left -= n;
    this.schedule();
  }

  /** `w` ran out of this turn's allowance: resumed in a later turn, after those already waiting. */
  wait(w: TurnWaiter): void {
    this.waiting.delete(w);
    this.waiting.add(w);
    this.schedule();
  }

  /** `w` has closed: it waits no longer. */
  forget(w: TurnWaiter): void {
    this.waiting.delete(w);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(nextTurn);
  }

  /** @internal A new turn: a new allowance, and the waiting connections resumed in order while it lasts. */
  turn(): void {
    this.scheduled = false;
    this.left = PUBLISHES_PER_TURN;
    for (const w of this.waiting) {
      if (this.left <= 0) break;
      this.waiting.delete(w);
      w.resumeTurn();
    }
    if (this.waiting.size > 0) this.schedule();
  }
}

/** The process's input turns (one event loop per process). */
export const inputTurns = new InputTurns();

function nextTurn(): void {
  inputTurns.turn();
}
