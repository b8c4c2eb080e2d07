// The demo page: a chat on @mqgate/sdk's browser (ESM) build, no framework. Served by the
// demo (packages/demo/src/web-server.ts) with /config.json telling it the gate's WebSocket port.
// Query string: ?reconnectDelay=<ms> fixes the first reconnection delay (no jitter), so a
// "drop connection" stays offline that long (the end-to-end test uses it).
import { connect } from '@mqgate/sdk';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const config = await (await fetch('/config.json')).json();
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:${config.wsPort}${config.wsPath}`;

let gate;
let me = '';
/** Names this page has heard of (joins, messages, whispers): "who is online" asks the gate about them. */
const known = new Set();

function status(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
}
function line(list, text, cls) {
  const li = document.createElement('li');
  li.textContent = text;
  if (cls) li.className = cls;
  $(list).append(li);
  li.scrollIntoView({ block: 'nearest' });
}
function showSettings(settings) {
  $('settings').replaceChildren(
    ...Object.entries(settings ?? {}).map(([k, v]) => {
      const li = document.createElement('li');
      li.textContent = `${k} = ${v}`;
      return li;
    }),
  );
}
async function refreshOnline() {
  if (!me || !gate?.connected) return;
  const { online } = await gate.request('chat/HD_who', { userIds: [me, ...known].slice(0, 100) });
  $('online').replaceChildren(
    ...online.map((u) => {
      const li = document.createElement('li');
      li.textContent = u === me ? `${u} (you)` : u;
      return li;
    }),
  );
}
function heard(name) {
  if (!name || name === me || known.has(name) || /^[0-9a-f]{32}$/.test(name)) return false;
  known.add(name);
  void refreshOnline().catch(() => undefined);
  return true;
}

/** Logs in (with a JWT the user came with the token at CONNECT: the page only reads the session). */
async function login(name) {
  const r = config.jwt ? await gate.request('user/HD_get') : await gate.request('user/HD_login', { userId: name });
  me = r.userId;
  sessionStorage.setItem('mqgate-demo-name', me);
  $('me').textContent = me;
  showSettings(r.settings);
  await gate.request('chat/HD_join');
  await refreshOnline();
}

async function start(token) {
  const delay = params.get('reconnectDelay');
  gate = await connect(url, {
    ...(token && { token }),
    ...(delay && { reconnect: { initialDelay: Number(delay), jitter: 0 } }),
    // The resume was refused (window over, session replaced...): log in again with the same name.
    onSessionLost: async ({ reason }) => {
      line('pushes', `session lost (${reason})${me && !config.jwt ? `: logging in again as ${me}` : ''}`);
      if (me && !config.jwt) await login(me);
    },
  });
  window.gate = gate; // for the browser console
  status('ready', `connected to ${url}`);
  gate.on('online', ({ reconnected }) => reconnected && status('ready', 'reconnected'));
  gate.on('offline', ({ reason }) => status('offline', `offline: ${reason}`));
  gate.on('reconnecting', ({ attempt, delay }) => status('offline', `offline: reconnecting in ${delay} ms (attempt ${attempt})`));
  gate.on('resumed', (r) =>
    status('resumed', `resumed session: recovered ${r.recovered}, ${r.replayed} missed message(s) replayed, ${r.lost ?? 'unknown'} lost`),
  );
  gate.on('close', ({ reason }) => status('closed', `closed: ${reason}`));
  gate.on('kick', ({ reason, reasonCode }) => {
    $('kick').hidden = false;
    $('kick').textContent =
      `Kicked: ${reason}${reasonCode === undefined ? '' : ` (reason code 0x${reasonCode.toString(16)})`}. Reload the page to connect again.`;
  });
  gate.on('chat/onMessage', ({ from, text }) => {
    heard(from);
    line('messages', `${from}: ${text}`);
  });
  gate.on('chat/onWhisper', ({ from, text }) => {
    heard(from);
    line('messages', `${from} → you: ${text}`, 'whisper');
  });
  gate.on('chat/onJoin', ({ from }) => {
    // A newcomer: say we are here too (they learn our name from our join).
    if (heard(from) && me) void gate.request('chat/HD_join').catch(() => undefined);
  });
  gate.on('#', (body, { topic }) => {
    const shown = topic === 'gate/session' ? `new resume token for session ${body.sessionId}` : JSON.stringify(body);
    line('pushes', `${topic} ${shown}`);
  });
}

/** Runs a form's action, showing a refusal (a GateError's text) instead of throwing. */
function onSubmit(form, action) {
  $(form).addEventListener('submit', (e) => {
    e.preventDefault();
    action().catch((err) => line('pushes', `${err.name}: ${err.message}`));
  });
}

onSubmit('login-form', async () => {
  if (config.jwt && !gate) await start($('token').value.trim());
  await login($('name').value.trim());
});
onSubmit('set-form', async () => {
  const r = await gate.request('user/HD_set', { key: $('set-key').value, value: $('set-value').value });
  showSettings(r.settings);
});
onSubmit('say-form', async () => {
  await gate.request('chat/HD_say', { text: $('text').value });
  $('text').value = '';
});
onSubmit('whisper-form', async () => {
  const to = $('whisper-to').value.trim();
  await gate.request('chat/HD_whisper', { to, text: $('whisper-text').value });
  line('messages', `you → ${to}: ${$('whisper-text').value}`, 'whisper');
  heard(to);
  $('whisper-text').value = '';
});
onSubmit('kick-form', () => gate.request('user/HD_kick', { userId: me, reason: $('kick-reason').value }));
$('drop').addEventListener('click', () => gate?.mqtt?.stream.destroy()); // closes the WebSocket, no MQTT DISCONNECT
setInterval(() => void refreshOnline().catch(() => undefined), 3000);

$('name').value = sessionStorage.getItem('mqgate-demo-name') ?? '';
if (config.jwt) {
  $('token').hidden = false;
  status('connecting', 'this demo checks JWTs: paste a token (npm run -s token -- <name>) and log in');
} else {
  await start().catch((err) => status('closed', `cannot connect to ${url}: ${err.message}`));
}
