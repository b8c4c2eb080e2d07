/**
 * docker-compose.yml, kept correct by reading (no Docker engine here): the gates and the
 * modules run the `mqgate` command on config files that exist and pass --check, the gates'
 * health checks ask /readyz on the metrics port, Prometheus scrapes them with a config file
 * in the repo, and every file the compose file references exists.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../src';

const ROOT = resolve(__dirname, '../../..');
interface Service {
  command?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  ports?: string[];
}
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const s = compose.services;

test.each(['gate1', 'gate2'])('%s runs `mqgate gate` on a config that loads, health-checked on /readyz', (name) => {
  const svc = s[name];
  expect(svc.command?.slice(1, 3)).toEqual(['packages/cli/dist/bin.js', 'gate']);
  const config = svc.command![svc.command!.indexOf('--config') + 1];
  expect(existsSync(join(ROOT, config))).toBe(true);
  const c = loadConfig(join(ROOT, config), svc.environment);
  expect(c.get('transport.url')).toBe('redis://redis:6379');
  expect(c.get('mqtts.enabled')).toBe(false);
  expect(svc.healthcheck?.test.join(' ')).toContain(`http://127.0.0.1:${c.get('metrics.port')}/readyz`);
  expect(svc.ports).toContainEqual(expect.stringMatching(new RegExp(`:${c.get('metrics.port')}$`)));
});

test('modules runs `mqgate modules` on a config whose module files exist', () => {
  const svc = s.modules;
  expect(svc.command?.slice(1, 3)).toEqual(['packages/cli/dist/bin.js', 'modules']);
  const config = join(ROOT, svc.command![svc.command!.indexOf('--config') + 1]);
  const c = loadConfig(config, svc.environment);
  for (const m of c.get<string[]>('modules')) expect(existsSync(join(c.dir, m))).toBe(true);
});

test('Prometheus scrapes both gates with a config file from the repo; every mounted file exists', () => {
  const mounts = Object.values(s).flatMap((svc) => svc.volumes ?? []);
  for (const v of mounts.filter((m) => m.startsWith('./'))) expect(existsSync(join(ROOT, v.split(':')[0]))).toBe(true);
  const prom = s.prometheus.volumes!.find((v) => v.includes('prometheus.yml'))!.split(':')[0];
  const scrape = parse(readFileSync(join(ROOT, prom), 'utf8')) as {
    scrape_configs: { metrics_path: string; static_configs: { targets: string[] }[] }[];
  };
  expect(scrape.scrape_configs[0].metrics_path).toBe('/metrics');
  expect(scrape.scrape_configs[0].static_configs[0].targets).toEqual(['gate1:9563', 'gate2:9563']);
});
