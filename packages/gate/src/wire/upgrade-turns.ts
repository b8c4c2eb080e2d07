/**
 * A bound on the WebSocket upgrades (ws's handshake: header checks, the Sec-WebSocket-Accept
 * SHA-1, the 101 response, the WebSocket's setup, and the gate's accept of the new wire: its
 * admission and its MqttConnection) completed per turn of the event loop, so that a burst of
 * clients connecting at once does not complete them all in one turn. A turn runs from one
 * `setImmediate` (the check phase) to the next, as in protocol/input-turns.ts. Past
 * {@link UPGRADES_PER_TURN}, an upgrade request waits in order (its socket untouched; its
 * connectTimeout deadline and its count at the door still run) and later turns complete the
 * waiting ones, oldest first, at most {@link UPGRADES_PER_TURN} each; a request that comes
 * while others wait goes behind them.
 *
 * What waits is bounded by what holds the sockets: the door's caps on connections pending and
 * open (maxConnections, maxConnectionsPerIp count a socket before its upgrade) and the
 * connectTimeout that destroys a socket not upgraded in time (a socket closed while waiting is
 * destroyed by ws when its turn comes). Before, 200 WebSocket clients upgrading at once had up
 * to 49 ms of CPU of upgrades in one event-loop iteration (`node bench/attack/ws-pipeline.mjs
 * 200 3 --cpu-prof`, the stall's samples). Per process, as the event loop is: every gate of a
 * process shares it. Node's accept of the TCP socket and its HTTP parse of the request (about
 * a quarter of an upgrade's CPU) run before this bound, per socket read.
 */

/** WebSocket upgrades completed per turn of the event loop at most: 16 (about 5 ms of CPU on the loaded 2-core machine, 0.3 ms each). */
export const UPGRADES_PER_TURN = 16;

/** An upgrade request waiting for its turn. */
export interface PendingUpgrade {
  /** Completes it (ws's handleUpgrade). */
  complete(): void;
}

class UpgradeTurns {
  /** Upgrades that may still be completed in this turn. */
  private left = UPGRADES_PER_TURN;
  private queue: PendingUpgrade[] = [];
  private head = 0;
  private scheduled = false;

  /** Completes `u` now when the turn has room and none wait, else in a later turn, in order. */
  admit(u: PendingUpgrade): void {
    this.schedule();
    if (this.left > 0 && this.head === this.queue.length) {
      this.left--;
      u.complete();
      return;
    }
    this.queue.push(u);
  }

  /** Upgrade requests waiting now. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(nextTurn);
  }

  /** @internal A new turn: a new count, and the waiting upgrades completed in order while it lasts. */
  turn(): void {
    this.scheduled = false;
    this.left = UPGRADES_PER_TURN;
    while (this.left > 0 && this.head < this.queue.length) {
      const u = this.queue[this.head];
      this.queue[this.head++] = DONE;
      this.left--;
      u.complete();
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else this.schedule();
  }
}

const DONE: PendingUpgrade = { complete: () => undefined };

/** The process's upgrade turns (one event loop per process). */
export const upgradeTurns = new UpgradeTurns();

function nextTurn(): void {
  upgradeTurns.turn();
}
