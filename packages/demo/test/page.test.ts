/**
 * The demo page end to end, in real headless Chromium (Debian's `chromium`, driven by
 * playwright-core; no browser is downloaded): the demo process serves the page, the SDK's ESM
 * build and MQTT.js's browser bundle over HTTP, and the page talks MQTT over the demo's
 * WebSocket listener. Two pages: log in on both, chat both ways, whisper, who is online, set a
 * setting and get it back after a reload and a new login, a dropped connection whose missed
 * messages come back with the resume, a kick. Saves a screenshot to bench-results/demo-chat.png
 * (the README's docs/images/demo-chat.png is refreshed from it by hand), so a test run leaves the
 * tree clean.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { connect, type GateClient } from '@mqgate/sdk';
import { startDemo, type DemoProcess } from './helpers/demo-process';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  // Two tabs in one window: keep the one in the background running at full speed.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];
const SCREENSHOT = join(__dirname, '..', '..', '..', 'bench-results', 'demo-chat.png');
/** The first reconnection delay of the dropping page, ms (no jitter): it stays offline that long. */
const OFFLINE_MS = 2500;

let demo: DemoProcess;
let context: BrowserContext;
let profile: string;
let probe: GateClient;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
  profile = mkdtempSync(join(tmpdir(), 'mqgate-page-test-'));
  [demo, context] = await Promise.all([
    startDemo(),
    chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS }),
  ]);
  probe = await connect(demo.tcpUrl, { reconnect: false });
});
afterAll(async () => {
  await probe?.close();
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await demo?.stop();
});

async function openPage(query = ''): Promise<Page> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${demo.pageUrl!}${query}`);
  await page.waitForSelector('#status[data-state=ready]', { timeout: 10_000 }).catch((e: Error) => {
    throw new Error(`the page did not connect: ${e.message}; page errors: ${errors.join('; ')}`);
  });
  return page;
}

async function logIn(page: Page, name: string): Promise<void> {
  await page.fill('#name', name);
  await click(page, '#login');
  await expectText(page, '#me', name);
}

/** Waits until the element's text contains `text` (Playwright polls the DOM; the expression runs in the page). */
async function expectText(page: Page, selector: string, text: string): Promise<void> {
  const inPage = `document.querySelector(${JSON.stringify(selector)})?.textContent?.includes(${JSON.stringify(text)}) === true`;
  await page
    .waitForFunction(inPage, undefined, {
      timeout: 10_000,
      polling: 20, // ms; the default polls on animation frames, which a background tab may not get
    })
    .catch(async (e: Error) => {
      throw new Error(`${selector} never held ${JSON.stringify(text)}; it holds ${JSON.stringify(await page.textContent(selector))} (${e.message})`);
    });
}

/** Clicks as a user would, on the tab brought to the front (Playwright's checks wait for frames a background tab may not paint). */
async function click(page: Page, selector: string): Promise<void> {
  await page.bringToFront();
  await page.click(selector);
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#text', text);
  await click(page, '#say');
}

test('two pages chat, whisper, keep settings across a reload, survive a dropped connection, and show a kick', async () => {
  expect(demo.pageUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  const alice = await openPage(`?reconnectDelay=${OFFLINE_MS}`);
  const bob = await openPage();
  await logIn(alice, 'alice');
  await logIn(bob, 'bob');

  // who is online: each page learns the other from its join
  await expectText(alice, '#online', 'bob');
  await expectText(bob, '#online', 'alice');

  await say(alice, 'hello bob');
  await expectText(bob, '#messages', 'alice: hello bob');
  await say(bob, 'hi alice');
  await expectText(alice, '#messages', 'bob: hi alice');

  await alice.fill('#whisper-to', 'bob');
  await alice.fill('#whisper-text', 'psst');
  await click(alice, '#whisper');
  await expectText(bob, '#messages', 'alice → you: psst');

  await alice.fill('#set-key', 'color');
  await alice.fill('#set-value', 'teal');
  await click(alice, '#set');
  await expectText(alice, '#settings', 'color = teal');

  // A reload is a new connection, a guest again: logging in brings the stored settings back.
  await alice.reload();
  await alice.waitForSelector('#status[data-state=ready]');
  expect(await alice.textContent('#me')).toBe('nobody');
  expect(await alice.inputValue('#name')).toBe('alice'); // remembered by the tab (sessionStorage)
  await logIn(alice, 'alice');
  await expectText(alice, '#settings', 'color = teal');
  expect(await probe.request('user/HD_online', { userId: 'alice' })).toEqual({ userId: 'alice', online: true });

  // Drop: the socket closes with no DISCONNECT; bob talks while alice is away; the resume replays it.
  await click(alice, '#drop');
  await alice.waitForSelector('#status[data-state=offline]');
  for (let i = 0; (await probe.request<{ online: boolean }>('user/HD_online', { userId: 'alice' })).online; i++) {
    if (i > 200) throw new Error('the gate never saw alice drop');
    await new Promise((resolve) => setTimeout(resolve, 10)); // polling the gate: it has no event to await from here
  }
  await say(bob, 'are you there?');
  await bob.fill('#whisper-to', 'alice');
  await bob.fill('#whisper-text', 'call me');
  await click(bob, '#whisper');
  await expectText(bob, '#messages', 'you → alice: call me');
  await alice.waitForSelector('#status[data-state=resumed]', { timeout: OFFLINE_MS + 10_000 });
  expect(await alice.textContent('#status')).toBe('resumed session: recovered true, 2 missed message(s) replayed, 0 lost');
  await expectText(alice, '#messages', 'bob: are you there?');
  await expectText(alice, '#messages', 'bob → you: call me');
  await say(alice, 'back!');
  await expectText(bob, '#messages', 'alice: back!');

  mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
  await alice.setViewportSize({ width: 1100, height: 760 });
  await alice.screenshot({ path: SCREENSHOT, fullPage: true });
  expect(existsSync(SCREENSHOT)).toBe(true);

  await bob.fill('#kick-reason', 'see you later');
  await click(bob, '#kick-me');
  await expectText(bob, '#kick', 'Kicked: see you later (reason code 0x98)');
  await bob.waitForSelector('#status[data-state=closed]');
});

test('the page server hands out its files, the SDK build and MQTT.js, and nothing else', async () => {
  const base = demo.pageUrl!;
  const get = (path: string, init?: RequestInit) => fetch(new URL(path, base), init);
  expect(await (await get('/config.json')).json()).toEqual({ wsPort: demo.wsPort, wsPath: '/mqtt', jwt: false });
  const sdk = await get('/sdk/index.js');
  expect(sdk.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  expect(await sdk.text()).toContain("from './gate-client.js'");
  expect((await get('/vendor/mqtt.esm.js')).status).toBe(200);
  for (const path of ['/sdk/../package.json', '/%2e%2e/package.json', '/sdk/package.json', '/nope.js', `/${'a'.repeat(300)}.js`])
    expect([path, (await get(path)).status]).toEqual([path, 404]);
  expect((await get('/', { method: 'POST' })).status).toBe(405);
});

test('chat/HD_who answers who of the names asked is online, at most MAX_WHO of them; a guest cannot join', async () => {
  const c = await connect(demo.wsUrl, { reconnect: false });
  try {
    await c.request('user/HD_login', { userId: 'who-carol' });
    expect(await probe.request('chat/HD_who', { userIds: ['who-carol', 'who-nobody', 'who-carol'] })).toEqual({ online: ['who-carol'] });
    await expect(probe.request('chat/HD_who', { userIds: Array.from({ length: 101 }, (_, i) => `u${i}`) })).rejects.toThrow(
      '"userIds" holds 101 ids, at most 100',
    );
    await expect(probe.request('chat/HD_who', { userIds: 'x' })).rejects.toThrow('the request body must be {"userIds": [string, ...]}');
    await expect(probe.request('chat/HD_join')).rejects.toThrow('log in before joining');
  } finally {
    await c.close();
  }
});

test('with MQGATE_JWT_SECRET the page asks for a token (from `npm run token`) and the user comes from it', async () => {
  const secret = 'page-test-secret-0123456789abcdef0123';
  const jwtDemo = await startDemo({ MQGATE_JWT_SECRET: secret });
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [join(__dirname, '..', 'dist', 'token.js'), 'dana'], {
      env: { ...process.env, MQGATE_JWT_SECRET: secret },
    });
    const page = await context.newPage();
    await page.goto(jwtDemo.pageUrl!);
    await expectText(page, '#status', 'this demo checks JWTs');
    expect(await page.isVisible('#token')).toBe(true);
    await page.fill('#token', stdout.trim());
    await page.fill('#name', 'mallory'); // ignored: the token names the user
    await click(page, '#login');
    await expectText(page, '#me', 'dana');
    expect(await page.getAttribute('#status', 'data-state')).toBe('ready');
    await page.close();
  } finally {
    await jwtDemo.stop();
  }
});
