import type { BanKind, SharedBan, UserIndex } from '@mqgate/rpc';

/**
 * The shared ban list across an empty restart of the user index's store. Keeps the list a
 * gate last read from (or wrote to) the user index and the index's epoch (`UserIndex.epoch`,
 * RedisUserIndex: `<prefix>user-index:epoch`) at that time. When the epoch changed, or was
 * never read (the store may have lost the list before the first look), the bans still in
 * force are written back before the list is read, so a Redis restarted without persistence
 * does not lift every shared ban (the ban sync would otherwise take the empty list as lifted).
 * An index without `epoch` or `ban` is never written back to.
 */
export class SharedBanEpoch {
  private epoch: string | undefined;
  private readonly known = new Map<string, SharedBan>();

  /** A ban this gate wrote to the index. */
  wrote(ban: SharedBan): void {
    this.known.set(`${ban.kind}:${ban.value}`, ban);
  }

  /** A ban lifted here (gate.unban): not written back. */
  lifted(kind: BanKind, value: string): void {
    this.known.delete(`${kind}:${value}`);
  }

  /** The list as read from the index: what is known now. */
  read(list: readonly SharedBan[]): void {
    this.known.clear();
    for (const b of list) this.wrote(b);
  }

  /**
   * Looks at the index's epoch; when it is not the one last seen, writes back the known bans
   * not yet ended at `now` (ms). Resolves with how many were written back.
   * @throws the index's error (the ban sync logs it and retries at its next run).
   */
  async reassertIfReset(index: UserIndex, now: number): Promise<number> {
    if (!index.epoch || !index.ban) return 0;
    const epoch = await index.epoch();
    if (epoch === this.epoch) return 0;
    const live = [...this.known.values()].filter((b) => b.untilMs > now);
    for (const b of live) await index.ban(b.kind, b.value, b.untilMs);
    this.epoch = epoch;
    return live.length;
  }
}
