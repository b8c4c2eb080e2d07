import { EndBound } from '../src/wire/end-bound';

test('an ended connection is cut once, no sooner than its bound; one that closed first is never cut', async () => {
  const cut: string[] = [];
  let cutB!: () => void;
  const bCut = new Promise<void>((resolve) => (cutB = resolve));
  const bound = new EndBound<{ name: string }>(60, (t) => {
    cut.push(t.name);
    if (t.name === 'b') cutB();
  });
  const a = { name: 'a' };
  const b = { name: 'b' };
  const t0 = Date.now();
  bound.ended(a);
  bound.ended(b);
  bound.ended(b); // idempotent
  bound.closed(a);
  await bCut;
  expect(Date.now() - t0).toBeGreaterThanOrEqual(60);
  expect(cut).toEqual(['b']);
});
