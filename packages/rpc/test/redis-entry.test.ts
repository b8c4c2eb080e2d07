import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

// Runs the built package (`npx tsc -b packages/rpc`; npm test builds first) in a child
// process, resolved by name as an app would: `@mqgate/rpc` must not load ioredis, only
// `@mqgate/rpc/redis` does.
const ROOT = join(__dirname, '..', '..', '..');
const DIST = join(__dirname, '..', 'dist', 'redis', 'index.js');

/** The ioredis modules in require.cache after requiring `specifier`, and what it exports. */
function load(specifier: string): { ioredis: string[]; exports: string[] } {
  const script = `
    const loaded = require(${JSON.stringify(specifier)});
    const ioredis = Object.keys(require.cache).filter((f) => /[\\\\/]node_modules[\\\\/]ioredis[\\\\/]/.test(f));
    process.stdout.write(JSON.stringify({ ioredis, exports: Object.keys(loaded) }));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' })) as { ioredis: string[]; exports: string[] };
}

beforeAll(() => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npx tsc -b packages/rpc\` first`);
});

describe('package entries', () => {
  it("require('@mqgate/rpc') does not load ioredis, and exports the in-process transport", () => {
    const { ioredis, exports } = load('@mqgate/rpc');
    expect(ioredis).toEqual([]);
    expect(exports).toEqual(expect.arrayContaining(['InProcessTransport', 'MemoryUserIndex', 'RpcError', 'OptionError']));
    for (const name of ['RedisTransport', 'RedisUserIndex', 'RedisRegistry', 'RedisUnavailableError', 'quitRedis', 'rpcListKeys'])
      expect(exports).not.toContain(name);
    // What only the sibling packages use is in @mqgate/rpc/internal, not the public entry.
    for (const name of ['pickSticky', 'encodeRequest', 'toWireError', 'optionChecker']) expect(exports).not.toContain(name);
  });

  it("require('@mqgate/rpc/internal') exports the siblings' helpers and does not load ioredis", () => {
    const { ioredis, exports } = load('@mqgate/rpc/internal');
    expect(ioredis).toEqual([]);
    expect(exports).toEqual(expect.arrayContaining(['pickSticky', 'encodeRequest', 'toWireError', 'optionChecker', 'RANGES']));
    expect(exports).not.toContain('InProcessTransport');
  });

  it("require('@mqgate/rpc/redis') loads ioredis and exports every Redis-backed name", () => {
    const { ioredis, exports } = load('@mqgate/rpc/redis');
    expect(ioredis.length).toBeGreaterThan(0);
    expect(exports).toEqual(
      expect.arrayContaining([
        'RedisTransport',
        'RedisUserIndex',
        'RedisRegistry',
        'RedisUnavailableError',
        'quitRedis',
        'createRedis',
        'CONNECTION_POLICY',
        'rpcListKeys',
        'registryKeys',
        'KEY_SCHEMA',
      ]),
    );
  });
});
