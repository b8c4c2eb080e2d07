import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..', '..');
const DIST_INDEX = join(__dirname, '..', 'dist', 'index.js');

// Plain node, no jest, on the built dist (npm test builds first): what an app that depends on
// @mqgate/storage gets. Every jest global is a getter that records being read.
const PROBE = `
const path = require('node:path');
const JEST_GLOBALS = ['describe', 'it', 'test', 'expect', 'beforeAll', 'afterAll', 'beforeEach', 'afterEach', 'jest'];
let touched = [];
for (const name of JEST_GLOBALS) {
  Object.defineProperty(globalThis, name, { configurable: true, get() { touched.push(name); return undefined; } });
}
const dir = path.dirname(require.resolve('@mqgate/storage/package.json'));
const rel = (f) => path.relative(dir, f).split(path.sep).join('/');
const loadedFromStorage = () => Object.keys(require.cache).filter((f) => f.startsWith(dir + path.sep)).map(rel).sort();

const main = require('@mqgate/storage');
const result = { main: { touched, loaded: loadedFromStorage(), exports: Object.keys(main).sort() } };

touched = [];
const conformance = require('@mqgate/storage/conformance');
result.conformance = {
  resolved: rel(require.resolve('@mqgate/storage/conformance')),
  touched,
  describeStorageHandler: typeof conformance.describeStorageHandler,
};
process.stdout.write(JSON.stringify(result));
`;

interface ProbeResult {
  main: { touched: string[]; loaded: string[]; exports: string[] };
  conformance: { resolved: string; touched: string[]; describeStorageHandler: string };
}

describe("@mqgate/storage's main entry (built dist, in a child process)", () => {
  let result: ProbeResult;

  beforeAll(async () => {
    if (!existsSync(DIST_INDEX)) throw new Error(`${DIST_INDEX} is missing: build first (npm test runs tsc -b before jest)`);
    const { stdout } = await run(process.execPath, ['-e', PROBE], { cwd: ROOT });
    result = JSON.parse(stdout) as ProbeResult;
  });

  it('does not read any jest global when required', () => {
    expect(result.main.touched).toEqual([]);
  });

  it('does not load the conformance suite', () => {
    expect(result.main.loaded).toContain('dist/index.js');
    expect(result.main.loaded).not.toContain('dist/conformance.js');
    expect(result.main.exports).toEqual(expect.arrayContaining(['MemoryStorage', 'RedisStorage', 'StorageError']));
    expect(result.main.exports).not.toContain('describeStorageHandler');
  });

  it('serves the suite as @mqgate/storage/conformance, which reads no jest global until called', () => {
    expect(result.conformance.resolved).toBe('dist/conformance.js');
    expect(result.conformance.describeStorageHandler).toBe('function');
    expect(result.conformance.touched).toEqual([]);
  });
});
