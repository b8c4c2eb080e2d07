/**
 * README's config file reference and gate options table match the definitions: every config
 * key with its environment name, default and accepted values; every gate option named.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULTS } from '@mqgate/gate';
import { describeKind, envName, FIELDS } from '../src';

const README = readFileSync(join(resolve(__dirname, '../../..'), 'README.md'), 'utf8');

test.each(FIELDS.map((f) => [f.key, f] as const))('config key %s is documented as defined', (_key, f) => {
  const def = f.default === undefined ? 'unset' : `\`${JSON.stringify(f.default)}\``;
  expect(README).toContain(`| \`${f.key}\` | \`${envName(f.key)}\` | ${def} | ${describeKind(f.kind)} |`);
});

test('every gate option with a default is in the Gate options table', () => {
  for (const name of Object.keys(DEFAULTS)) expect(README).toMatch(new RegExp(`^\\| \`${name}\` \\|`, 'm'));
});
