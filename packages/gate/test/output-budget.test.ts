/**
 * Unit level: the output budget's accounting and sweep (largest backlogs closed
 * first, only until back under the bound), and a fan-out encoding once per protocol level and
 * handing the same Buffer to every receiver.
 */
import { OutputBudget, type BudgetMember } from '../src/protocol/output-budget';
import { PushEncoding, type PushTarget } from '../src/protocol/push-encoding';
import { encodePublishQos0, encodePublishV5 } from '../src/protocol/encode';

class Member implements BudgetMember {
  counted = 0;
  pushBytes = 0;
  backlogged = false;
  constructor(
    readonly name: string,
    public unsent = 0,
  ) {}
  unsentBytes(): number {
    return this.unsent;
  }
}

describe('OutputBudget', () => {
  test('the total follows writes and what the wires report after each tick; a connection that keeps up is not tracked', () => {
    const budget = new OutputBudget<Member>(1000, () => undefined);
    const fast = new Member('fast');
    const slow = new Member('slow');
    budget.add(fast, 300);
    budget.add(slow, 400);
    expect(budget.total).toBe(700);
    budget.settle(fast, 0); // the kernel took it all
    budget.settle(slow, 350);
    expect(budget.total).toBe(350);
    expect([...budget.backlogged]).toEqual([slow]);
    budget.release(slow);
    expect(budget.total).toBe(0);
    expect(budget.backlogged.size).toBe(0);
  });

  test('over the bound, the sweep closes the largest backlogs first until what they hold brings it back under', () => {
    const shed: string[] = [];
    const budget = new OutputBudget<Member>(1000, (m) => shed.push(m.name));
    const members = [new Member('a', 100), new Member('b', 600), new Member('c', 300), new Member('d', 500)];
    for (const m of members) {
      budget.add(m, m.unsent);
      budget.settle(m, m.unsent);
    }
    expect(budget.total).toBe(1500);
    expect(budget.sweep()).toBe(1);
    expect(shed).toEqual(['b']); // 1500 - 600 is under 1000: one is enough
    budget.close();
  });

  test('the sweep re-reads backlogs first: a backlog that drained meanwhile closes nobody', () => {
    const shed: string[] = [];
    const budget = new OutputBudget<Member>(1000, (m) => shed.push(m.name));
    const m = new Member('m', 5000);
    budget.add(m, 5000);
    budget.settle(m, 5000);
    m.unsent = 10; // the client read, no write since
    expect(budget.sweep()).toBe(0);
    expect(budget.total).toBe(10);
    expect(shed).toEqual([]);
    budget.close();
  });
});

describe('PushEncoding (broadcast, sendBatch, sendToUser)', () => {
  class Target implements PushTarget {
    got: Buffer[] = [];
    constructor(readonly v5: unknown) {}
    pushEncoded(bytes: Buffer): boolean {
      this.got.push(bytes);
      return true;
    }
  }

  test('one encoding per protocol level: every receiver of a level gets the same Buffer object', () => {
    const body = Buffer.alloc(60 * 1024, 0x61);
    const push = new PushEncoding('chat/HD_say', body, { contentType: 'text/plain' });
    const v4 = Array.from({ length: 50 }, () => new Target(undefined));
    const v5 = Array.from({ length: 50 }, () => new Target({}));
    for (let i = 0; i < 50; i++) {
      expect(push.pushTo(v4[i])).toBe(true);
      expect(push.pushTo(v5[i])).toBe(true);
    }
    expect(push.encodes).toBe(2);
    const [a, b] = [v4[0].got[0], v5[0].got[0]];
    for (const t of v4) expect(t.got[0]).toBe(a);
    for (const t of v5) expect(t.got[0]).toBe(b);
    expect(a.equals(encodePublishQos0('chat/HD_say', body))).toBe(true);
    expect(b.equals(encodePublishV5('chat/HD_say', body, { contentType: 'text/plain' }))).toBe(true);
  });

  test('a push that cannot be encoded reaches nobody and is encoded once', () => {
    const push = new PushEncoding('t'.repeat(70_000), Buffer.from('x'), undefined);
    const t = new Target(undefined);
    expect(push.pushTo(t)).toBe(false);
    expect(push.pushTo(new Target(undefined))).toBe(false);
    expect(push.encodes).toBe(1);
    expect(t.got).toEqual([]);
  });
});
