/**
 * The built package as apps load it: `import` gets the ESM build, `require` the CommonJS one,
 * both through the `exports` map, with types beside them; the ESM build imports no Node
 * built-in (it is what the demo page loads in Chromium). Runs the built dist (npm test builds first).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const PKG = join(__dirname, '..');
const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: PKG, encoding: 'utf8' }).trim();

test('import and require resolve to the two builds and export the same API', () => {
  const esm = node(['--input-type=module', '-e', "import * as m from '@mqgate/sdk'; console.log(Object.keys(m).sort().join(','))"]);
  const cjs = node(['-e', "console.log(Object.keys(require('@mqgate/sdk')).filter((k) => k !== '__esModule').sort().join(','))"]);
  expect(esm).toBe(cjs);
  expect(esm.split(',')).toEqual(
    expect.arrayContaining(['connect', 'GateClient', 'GateError', 'TimeoutError', 'ConnectionLostError', 'ConnectError']),
  );
  expect(node(['-e', "console.log(require.resolve('@mqgate/sdk'))"])).toBe(join(PKG, 'dist', 'cjs', 'index.js'));
  expect(existsSync(join(PKG, 'dist', 'esm', 'index.d.ts')) && existsSync(join(PKG, 'dist', 'cjs', 'index.d.ts'))).toBe(true);
});

test('the ESM build imports only its own files and mqtt', () => {
  const dir = join(PKG, 'dist', 'esm');
  const specifiers = readdirSync(dir)
    .filter((f) => f.endsWith('.js'))
    .flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/^(?:import|export)[^'"]*from '([^']+)'/gm)].map((m) => m[1]!));
  expect(specifiers.length).toBeGreaterThan(5);
  expect(specifiers.filter((s) => !s.startsWith('./') && s !== 'mqtt')).toEqual([]);
  expect(specifiers.filter((s) => s.startsWith('./') && !s.endsWith('.js'))).toEqual([]);
});
