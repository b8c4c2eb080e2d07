// Resume after a dropped connection, against the demo (`npm start`): node examples/resume.mjs [mqtt://localhost:3563]
// alice logs in and gets her resume token on gate/session; her connection drops; bob whispers
// to her meanwhile; she reconnects, resumes with the token (no login) and gets the whispers.
import mqtt from 'mqtt';

const url = process.argv[2] ?? 'mqtt://localhost:3563';
let seq = 0;
/** One mqant request: publish on `module/HD_fn/<msgid>`, the reply comes back on the same topic. */
const ask = (c, route, body) =>
  new Promise((resolve) => {
    const topic = `${route}/${++seq}`;
    c.on('message', function on(t, p) {
      if (t !== topic) return;
      c.off('message', on);
      resolve(JSON.parse(p.toString())); // {"Trace", "Error", "Result"}
    });
    c.publish(topic, JSON.stringify(body));
  });
/** The Result of a request that must succeed. */
const ok = async (c, route, body) => {
  const { Error: error, Result } = await ask(c, route, body);
  if (error) throw new Error(`${route}: ${error}`);
  return Result;
};
const nextPush = (c, topic) => new Promise((resolve) => c.on('message', (t, p) => t === topic && resolve(JSON.parse(p.toString()))));
const connect = () => mqtt.connectAsync(url, { reconnectPeriod: 0 });

const alice = await connect();
const firstToken = nextPush(alice, 'gate/session');
const login = await ok(alice, 'user/HD_login', { userId: 'alice' });
const { token, sessionId, expiresAt } = await firstToken; // after every bind and every resume
console.log(
  `logged in as ${login.userId}; gate/session push: session ${sessionId}, token ${token.slice(0, 3)}…, expires in ${Math.round((expiresAt - Date.now()) / 1000)} s`,
);
await ok(alice, 'user/HD_set', { key: 'room', value: 'lobby' });

alice.stream.destroy(); // the connection drops: no DISCONNECT, so the gate keeps the session detached
const bob = await connect();
await ok(bob, 'user/HD_login', { userId: 'bob' });
while ((await ok(bob, 'user/HD_online', { userId: 'alice' })).online) await new Promise((r) => setTimeout(r, 20));
console.log('alice dropped: offline, her session detached on the gate');
for (const text of ['are you there?', 'call me back'])
  console.log(`bob whispers "${text}": delivered ${(await ok(bob, 'chat/HD_whisper', { to: 'alice', text })).delivered}`);

const again = await connect();
const got = [];
again.on('message', (t, p) => got.push([t, p.toString()]));
const nextToken = nextPush(again, 'gate/session');
const resumed = await ok(again, 'gate/HD_resume', { token }); // on a new connection, before any login
console.log('resumed:', JSON.stringify(resumed));
const newToken = await nextToken; // the Result, then the missed pushes in order, then a new token
for (const [t, p] of got.filter(([t]) => t.startsWith('chat/'))) console.log('replayed:', t, p);
console.log('in this order:', got.map(([t]) => t).join(', '));
console.log(`new token for session ${newToken.sessionId}: ${newToken.token !== token ? 'a fresh one, the old one is used up' : 'the SAME (wrong)'}`);

const other = await connect();
console.log('the old token again:', (await ask(other, 'gate/HD_resume', { token })).Error);
await Promise.all([again, bob, other].map((c) => c.endAsync()));
