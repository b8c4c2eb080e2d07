// The packages as an app outside the repository gets them: `npm pack` of every public workspace
// (after the build), the tarballs installed into a fresh app in the OS temp folder (third-party
// packages from the npm cache or the registry), and that app run as a user would write it:
// a gate, a module and two clients from CommonJS and from ESM, `mqgate` from node_modules/.bin,
// and `tsc --noEmit` on code using the public API under moduleResolution node10, node16 and
// bundler. Fixtures in test/packed-app/. Needs the build (npm test runs tsc -b first) and npm.
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { NATS_MISSING } from '@mqgate/cli';

const ROOT = resolve(__dirname, '../../..');
const FIXTURES = join(__dirname, 'packed-app');
const exec = promisify(execFile);

/** The public workspaces: every one not marked private. */
const WORKSPACES: { dir: string; name: string; version: string }[] = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).workspaces as string[]
)
  .map((dir) => ({ dir, ...JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) }))
  .filter((p) => !p.private)
  .map(({ dir, name, version }) => ({ dir, name, version }));

/** What `npm pack --json` says of one tarball. */
interface Packed {
  name: string;
  version: string;
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

/** The version of a devDependency of the repository as installed, so the app gets it from the npm cache. */
function installed(name: string): string {
  return `${name}@${JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version}`;
}

/**
 * The environment for npm and node in the app: without the npm_* variables that `npm test` sets
 * (npm_config_local_prefix and friends would point a nested npm at the repository), keeping the cache and registry.
 */
function appEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) && !/^npm_config_(cache|registry|userconfig)$/i.test(k)) continue;
    if (k === 'INIT_CWD' || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  return env;
}

const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];

let tmp: string;
let app: string;
let packed: Packed[];

/** Runs a command in the app; resolves with its stdout; rejects (with stderr) on a non-zero exit or after `timeout` ms. */
async function inApp(file: string, args: string[], timeout = 60_000): Promise<string> {
  try {
    const { stdout } = await exec(file, args, { cwd: app, env: appEnv(), timeout, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; killed?: boolean; code?: number | string; message: string };
    const how = e.killed ? `did not exit within ${timeout} ms` : `exit ${e.code}`;
    throw new Error(`${file} ${args.join(' ')} in ${app}: ${how}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

function tarball(name: string): string {
  const p = packed.find((x) => x.name === name);
  if (!p) throw new Error(`${name} was not packed`);
  return join(tmp, 'tarballs', p.filename);
}

beforeAll(async () => {
  for (const w of WORKSPACES)
    if (!existsSync(join(ROOT, w.dir, 'dist'))) throw new Error(`${w.dir}/dist is missing: run npm run build first (npm test does)`);
  tmp = mkdtempSync(join(tmpdir(), 'mqgate-packed-'));
  app = join(tmp, 'app');
  mkdirSync(join(tmp, 'tarballs'));
  mkdirSync(app);
  const { stdout } = await exec(
    'npm',
    ['pack', '--json', '--loglevel=error', '--pack-destination', join(tmp, 'tarballs'), ...WORKSPACES.flatMap((w) => ['-w', w.dir])],
    {
      cwd: ROOT,
      env: appEnv(),
      timeout: 60_000,
      maxBuffer: 16 << 20,
    },
  );
  packed = JSON.parse(stdout);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'mqgate-packed-app', version: '1.0.0', private: true }, null, 2));
  for (const f of readdirSync(FIXTURES)) copyFileSync(join(FIXTURES, f), join(app, f));
  // Everything but @mqgate/nats, as an app on Redis alone installs it; typescript and @types/node for the tsc checks.
  const tarballs = packed.filter((p) => p.name !== '@mqgate/nats').map((p) => join(tmp, 'tarballs', p.filename));
  await inApp('npm', ['install', ...NPM_FLAGS, ...tarballs, installed('mqtt'), installed('typescript'), installed('@types/node')], 150_000);
}, 220_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('every public workspace is packed, at one version, its @mqgate dependencies pinned to that version', () => {
  expect(WORKSPACES.map((w) => w.name).sort()).toEqual([
    '@mqgate/cli',
    '@mqgate/client',
    '@mqgate/gate',
    '@mqgate/nats',
    '@mqgate/rpc',
    '@mqgate/sdk',
    '@mqgate/storage',
  ]);
  expect(packed.map((p) => p.name).sort()).toEqual(WORKSPACES.map((w) => w.name).sort());
  const versions = new Set(packed.map((p) => p.version));
  expect(versions.size).toBe(1);
  for (const w of WORKSPACES) {
    const manifest = JSON.parse(readFileSync(join(ROOT, w.dir, 'package.json'), 'utf8'));
    for (const field of ['dependencies', 'peerDependencies']) {
      for (const [dep, range] of Object.entries((manifest[field] ?? {}) as Record<string, string>)) {
        if (dep.startsWith('@mqgate/')) expect(`${w.name} ${field} ${dep}@${range}`).toBe(`${w.name} ${field} ${dep}@${w.version}`);
      }
    }
  }
});

test('each tarball holds LICENSE, README.md and what its manifest points at; no tests, keys or build info', () => {
  for (const p of packed) {
    const files = p.files.map((f) => f.path);
    expect([p.name, files.includes('LICENSE'), files.includes('README.md')]).toEqual([p.name, true, true]);
    expect([p.name, files.filter((f) => /(^|\/)(test|tests|__tests__)\/|\.test\.|\.key$|\.pem$|tsbuildinfo/.test(f))]).toEqual([p.name, []]);
    const dir = WORKSPACES.find((w) => w.name === p.name)?.dir ?? p.name;
    const manifest = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8'));
    const targets: string[] = [manifest.main, manifest.types, ...Object.values((manifest.bin ?? {}) as Record<string, string>)];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') targets.push(v);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(manifest.exports);
    walk(manifest.typesVersions);
    for (const t of targets.filter(Boolean)) expect(`${p.name}: ${t} ${files.includes(t.replace(/^\.\//, ''))}`).toBe(`${p.name}: ${t} true`);
  }
});

test('CommonJS: a gate, a module, an MQTT.js and an @mqgate/sdk request, a clean exit', async () => {
  const out = JSON.parse(await inApp('node', ['app.cjs'], 20_000));
  expect(out.mqttReply).toEqual({ topic: 'hello/HD_hi/1', body: { Trace: expect.any(String), Error: '', Result: { hi: 'mqtt.js', guest: true } } });
  expect(out.sdkReply).toEqual({ userId: 'alice' });
  expect(out.sdkEntry).toBe(join(app, 'node_modules/@mqgate/sdk/dist/cjs/index.js'));
});

test('ESM: the same with named imports; @mqgate/sdk is its ESM build', async () => {
  const out = JSON.parse(await inApp('node', ['app.mjs'], 20_000));
  expect(out.mqttReply).toEqual({ topic: 'hello/HD_hi/1', body: { Trace: expect.any(String), Error: '', Result: { hi: 'mqtt.js', guest: true } } });
  expect(out.sdkReply).toEqual({ userId: 'alice' });
  expect(out.sdkEntry).toBe(`file://${join(app, 'node_modules/@mqgate/sdk/dist/esm/index.js')}`);
});

test('without @mqgate/nats (an optional peer of @mqgate/cli): not installed, and `mqgate` asked for NATS says what to install', async () => {
  expect(existsSync(join(app, 'node_modules/@mqgate/nats'))).toBe(false);
  expect(existsSync(join(app, 'node_modules/@nats-io'))).toBe(false);
  expect(await inApp(join(app, 'node_modules/.bin/mqgate'), ['--help'])).toContain('Usage: mqgate');
  writeFileSync(
    join(app, 'modules-nats.json'),
    JSON.stringify({
      transport: { type: 'nats', servers: ['nats://127.0.0.1:9'] },
      userIndex: { url: 'redis://127.0.0.1:9' },
      modules: ['./echo-module.cjs'],
    }),
  );
  const failed = await inApp(join(app, 'node_modules/.bin/mqgate'), ['modules', '--config', 'modules-nats.json'], 20_000).then(
    () => undefined,
    (err: Error) => err.message,
  );
  // exit 2 (a config error), before any connection to NATS or Redis
  expect(failed).toContain(': exit 2: ');
  expect(failed).toContain(`mqgate modules failed to start: ${NATS_MISSING}`);
});

test("@mqgate/cli's README example, as shipped: its config files pass `mqgate … --check`, its module file loads", async () => {
  const readme = readFileSync(join(app, 'node_modules/@mqgate/cli/README.md'), 'utf8');
  // each yaml/js block that opens with a comment naming its file is that file
  const blocks = [...readme.matchAll(/```(?:yaml|js)\n(?:#|\/\/) ([\w.-]+)\b[^\n]*\n([\s\S]*?)```/g)].map(([, name, body]) => [name, body]);
  expect(blocks.map(([name]) => name)).toEqual(['modules.yaml', 'hello.js', 'gate.yaml']);
  for (const [name, body] of blocks) writeFileSync(join(app, name), body);
  const bin = join(app, 'node_modules/.bin/mqgate');
  expect(await inApp(bin, ['modules', '--check', '--config', 'modules.yaml'])).toContain('mqgate modules: config ok');
  expect(await inApp(bin, ['gate', '--check', '--config', 'gate.yaml'])).toContain('mqgate gate: config ok');
  const loaded = await inApp('node', [
    '-e',
    "require('@mqgate/cli').loadModule(require('node:path').resolve('hello.js')).then((d) => console.log(d.type, Object.keys(d.handlers)))",
  ]);
  expect(loaded.trim()).toBe("hello [ 'HD_hi' ]");
});

describe('with @mqgate/nats installed', () => {
  beforeAll(async () => {
    await inApp('npm', ['install', ...NPM_FLAGS, tarball('@mqgate/nats')], 90_000);
  }, 100_000);

  test('source maps and declaration maps point at sources in the tarballs', () => {
    let maps = 0;
    for (const p of packed) {
      const dir = join(app, 'node_modules', p.name);
      for (const f of p.files.map((x) => x.path).filter((x) => x.endsWith('.map'))) {
        const map = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { sources: string[] };
        for (const s of map.sources) {
          const source = relative(dir, resolve(dir, dirname(f), s));
          expect(`${p.name}/${f} -> ${source} ${existsSync(join(dir, source))}`).toBe(`${p.name}/${f} -> ${source} true`);
        }
        maps++;
      }
    }
    expect(maps).toBeGreaterThan(100);
  });

  /** `tsc --noEmit` in the app: strict, Node's types, skipLibCheck off unless asked. */
  const tsc = (module: string, moduleResolution: string, files: string[], skipLibCheck = false) =>
    inApp(
      'node',
      [
        'node_modules/typescript/bin/tsc',
        '--noEmit',
        '--strict',
        '--target',
        'es2022',
        '--types',
        'node',
        '--module',
        module,
        '--moduleResolution',
        moduleResolution,
        ...(skipLibCheck ? ['--skipLibCheck'] : []),
        ...files,
      ],
      90_000,
    );

  test('tsc --noEmit on the public API under moduleResolution node10, node16 (CommonJS and ESM) and bundler', async () => {
    copyFileSync(join(app, 'check.ts'), join(app, 'check.mts'));
    // one after the other: CI's two cores run other test files meanwhile
    // no @nats-io types in any .d.ts but @mqgate/nats's: node10 apps of the other packages keep skipLibCheck off
    await tsc('commonjs', 'node10', ['check.ts']);
    const explained = await tsc('node16', 'node16', ['--explainFiles', 'check.ts', 'check.mts', 'check-nats.ts']);
    // the dual package: require() gets the CommonJS build's types, import the ESM build's
    expect(explained).toMatch(/node_modules\/@mqgate\/sdk\/dist\/cjs\/index\.d\.ts\n {2}Imported via '@mqgate\/sdk' from file 'check\.ts'/);
    expect(explained).toMatch(/node_modules\/@mqgate\/sdk\/dist\/esm\/index\.d\.ts\n {2}Imported via '@mqgate\/sdk' from file 'check\.mts'/);
    await tsc('esnext', 'bundler', ['check.ts', 'check-nats.ts']);
    // @nats-io/transport-node's own types need subpath exports: under node10, @mqgate/nats wants skipLibCheck (its README says so)
    await tsc('commonjs', 'node10', ['check-nats.ts'], true);
  }, 150_000);
});
