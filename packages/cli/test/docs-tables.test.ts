/**
 * The reference pages' tables match the definitions: docs/reference/config-file.md lists every
 * config key with its environment name, default and accepted values, and
 * docs/reference/gate-options.md names every gate option that has a default.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULTS } from '@mqgate/gate';
import { describeKind, envName, FIELDS } from '../src';

const REFERENCE = join(resolve(__dirname, '../../..'), 'docs', 'reference');
const CONFIG_FILE = readFileSync(join(REFERENCE, 'config-file.md'), 'utf8');
const GATE_OPTIONS = readFileSync(join(REFERENCE, 'gate-options.md'), 'utf8');

test.each(FIELDS.map((f) => [f.key, f] as const))('config key %s is documented as defined', (_key, f) => {
  const def = f.default === undefined ? 'unset' : `\`${JSON.stringify(f.default)}\``;
  expect(CONFIG_FILE).toContain(`| \`${f.key}\` | \`${envName(f.key)}\` | ${def} | ${describeKind(f.kind)} |`);
});

test('the config file reference lists no key the definitions do not have', () => {
  const keys = new Set(FIELDS.map((f) => f.key));
  const rows = [...CONFIG_FILE.matchAll(/^\| `([^`]+)` \| `MQGATE_[A-Z0-9_]+` \|/gm)].map((m) => m[1]);
  expect(rows.length).toBe(FIELDS.length);
  expect(rows.filter((k) => !keys.has(k))).toEqual([]);
});

test('every gate option with a default is in the Gate options table', () => {
  for (const name of Object.keys(DEFAULTS)) expect(GATE_OPTIONS).toMatch(new RegExp(`^\\| \`${name}\` \\|`, 'm'));
});
