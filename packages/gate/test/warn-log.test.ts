import { createWarnLog } from '../src/ops/warn-log';

test('one warn line per kind per interval; the next line carries the number suppressed', () => {
  const lines: Array<[object, string]> = [];
  let t = 1000;
  const warn = createWarnLog(
    { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (f, m) => lines.push([f, m]) },
    10_000,
    () => t,
  );
  warn('slow-consumer', { ip: '10.0.0.1' }, 'closed a slow consumer');
  warn('slow-consumer', { ip: '10.0.0.2' }, 'closed a slow consumer');
  warn('slow-consumer', { ip: '10.0.0.3' }, 'closed a slow consumer');
  warn('emfile', {}, 'accept failed: EMFILE');
  expect(lines).toEqual([
    [{ kind: 'slow-consumer', ip: '10.0.0.1' }, 'closed a slow consumer'],
    [{ kind: 'emfile' }, 'accept failed: EMFILE'],
  ]);
  t += 9_999;
  warn('slow-consumer', { ip: '10.0.0.4' }, 'closed a slow consumer');
  expect(lines).toHaveLength(2);
  t += 1;
  warn('slow-consumer', { ip: '10.0.0.5' }, 'closed a slow consumer');
  expect(lines[2]).toEqual([{ kind: 'slow-consumer', ip: '10.0.0.5', suppressed: 3 }, 'closed a slow consumer']);
});
