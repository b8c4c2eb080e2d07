/**
 * Every relative link of README.md and docs/**\/*.md resolves: `](path)` names a file or folder
 * that exists, and `](path#anchor)` / `](#anchor)` a heading of that Markdown file, by
 * GitHub's anchor rules (lowercase; punctuation but `-` and `_` dropped; each space a `-`; a
 * repeated heading gets `-1`, `-2`, …). Links inside fenced code blocks and inline code are
 * not links. Each docs page also links back to the README.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../../..');

function markdownFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...markdownFiles(p));
    else if (name.endsWith('.md')) out.push(p);
  }
  return out;
}

const FILES = [join(ROOT, 'README.md'), ...markdownFiles(join(ROOT, 'docs'))];

/** The text outside fenced code blocks and inline code spans. */
function prose(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor of a heading's text. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

const anchorCache = new Map<string, Set<string>>();
function anchorsOf(file: string): Set<string> {
  let anchors = anchorCache.get(file);
  if (!anchors) {
    anchors = new Set();
    const seen = new Map<string, number>();
    const text = readFileSync(file, 'utf8').replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
    for (const m of text.matchAll(/^#{1,6} +(.+?) *#* *$/gm)) {
      const base = slug(m[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1'));
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    anchorCache.set(file, anchors);
  }
  return anchors;
}

/** The relative link targets of a Markdown file: `[text](target)`, absolute URLs left out. */
function linksOf(file: string): string[] {
  const targets: string[] = [];
  for (const m of prose(readFileSync(file, 'utf8')).matchAll(/\]\(([^)\s]+)(?: "[^"]*")?\)/g)) {
    if (!/^[a-z][a-z0-9+.-]*:/i.test(m[1])) targets.push(m[1]);
  }
  return targets;
}

/** Why a link of `file` does not resolve, or undefined when it does. */
function broken(file: string, target: string): string | undefined {
  const [path, anchor] = target.split('#', 2) as [string, string | undefined];
  const dest = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
  if (!existsSync(dest)) return `no file ${relative(ROOT, dest)}`;
  if (anchor === undefined) return undefined;
  if (!dest.endsWith('.md')) return `an anchor into ${relative(ROOT, dest)}, not a Markdown file`;
  return anchorsOf(dest).has(anchor) ? undefined : `no heading #${anchor} in ${relative(ROOT, dest)}`;
}

test('the docs are there: README.md, docs/README.md, guides and reference pages', () => {
  const names = FILES.map((f) => relative(ROOT, f));
  expect(names).toEqual(expect.arrayContaining(['README.md', 'docs/README.md', 'docs/guides/embedding.md', 'docs/reference/gate-options.md']));
});

test.each(FILES.map((f) => [relative(ROOT, f), f] as const))('every relative link of %s resolves', (_name, file) => {
  const links = linksOf(file);
  expect(links.length).toBeGreaterThan(0);
  expect(links.map((t) => [t, broken(file, t)]).filter(([, why]) => why !== undefined)).toEqual([]);
});

test.each(FILES.filter((f) => f.startsWith(join(ROOT, 'docs'))).map((f) => [relative(ROOT, f), f] as const))(
  '%s links back to the README',
  (_name, file) => {
    const back = relative(dirname(file), join(ROOT, 'README.md'));
    expect(linksOf(file)).toContain(back);
  },
);

test('every docs page is linked from docs/README.md', () => {
  const index = join(ROOT, 'docs', 'README.md');
  const linked = new Set(linksOf(index).map((t) => resolve(dirname(index), t.split('#')[0])));
  const pages = FILES.filter((f) => f.startsWith(join(ROOT, 'docs')) && f !== index);
  expect(pages.filter((f) => !linked.has(f)).map((f) => relative(ROOT, f))).toEqual([]);
});

test("the anchor rules are GitHub's", () => {
  expect(slug('Production: TLS, load balancers, probes, drain, the `mqgate` command')).toBe(
    'production-tls-load-balancers-probes-drain-the-mqgate-command',
  );
  expect(slug('A StorageHandler file (`storage.module`, `MQGATE_STORAGE_MODULE`)')).toBe('a-storagehandler-file-storagemodule-mqgate_storage_module');
  expect(broken(join(ROOT, 'README.md'), 'docs/guides/no-such-page.md')).toBe('no file docs/guides/no-such-page.md');
  expect(broken(join(ROOT, 'README.md'), '#no-such-heading')).toBe('no heading #no-such-heading in README.md');
});
