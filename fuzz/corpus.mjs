// The fuzzer's seeds: valid packets of every MQTT packet type at protocol levels 3 (3.1),
// 4 (3.1.1) and 5, encoded by mqtt-packet, each with the offsets of its length fields (the
// 2-byte string / binary lengths and, at level 5, the Property Length varints) so that the
// mutators can corrupt them precisely. Deterministic: the same corpus on every run, so a
// case is reproducible from its seed.
import mqtt from 'mqtt-packet';

export const LEVELS = [3, 4, 5];

/** Topics the demo modules answer (and some they do not). */
const REQUESTS = [
  ['echo/HD_echo/1', '{"a":1}'],
  ['echo/HD_echo/2', Buffer.from([0, 1, 2, 0xff, 0xfe])],
  ['echo/HD_echo/a/b/c', ''],
  ['echo/HD_echo', '{"notify":true}'],
  ['user/HD_login/3', '{"userId":"fz-user"}'],
  ['user/HD_set/4', '{"key":"k","value":"v"}'],
  ['user/HD_get/5', '{}'],
  ['user/HD_count/6', '{}'],
  ['chat/HD_say/7', '{"text":"hi"}'],
  ['chat/HD_whisper/8', '{"to":"fz-user","text":"psst"}'],
  ['nomodule/HD_nothing/9', '{}'],
  ['echo@gate-none/HD_echo/10', '{}'],
  ['single', 'x'],
];

const USER_PROPERTIES = { fza: '1', fzb: ['x', 'yé'] };

/** Reads a Variable Byte Integer at `off`: { value, bytes }. */
export function readVarint(buf, off) {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 4 && off + i < buf.length; i++) {
    const b = buf[off + i];
    value += (b & 0x7f) * mul;
    mul *= 128;
    if (!(b & 0x80)) return { value, bytes: i + 1 };
  }
  return { value, bytes: 0 };
}

/** The encoding of `n` as a Variable Byte Integer (any n ≥ 0, up to 5 bytes for the mutators). */
export function varint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0 && out.length < 5);
  return Buffer.from(out);
}

/** Bytes of the fixed header (type byte and Remaining Length). */
export function fixedHeaderLength(packet) {
  return 1 + readVarint(packet, 1).bytes;
}

/** Offsets `o` where a u16 at `o` equals the length of one of `values` that follows it. */
function lengthFields(bytes, values) {
  const found = new Set();
  for (const v of values) {
    if (v === undefined || v === null) continue;
    const needle = Buffer.isBuffer(v) ? v : Buffer.from(String(v));
    if (needle.length === 0) continue;
    for (let i = bytes.indexOf(needle, 2); i >= 2; i = bytes.indexOf(needle, i + 1)) {
      if (bytes.readUInt16BE(i - 2) === needle.length) found.add(i - 2);
    }
  }
  return [...found].sort((a, b) => a - b);
}

function entry(name, level, packet, strings = [], varints = []) {
  const bytes = mqtt.generate(packet, { protocolVersion: level === 5 ? 5 : 4 });
  return { name, level, cmd: packet.cmd, bytes, u16s: lengthFields(bytes, strings), varints };
}

// ---- CONNECT: every flag combination ------------------------------------------------------

const WILLS = [null, [0, false], [0, true], [1, false], [1, true], [2, false], [2, true]];

function connectPacket(level, { clean, will, username, password, props, index }) {
  const p = {
    cmd: 'connect',
    protocolId: level === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: level,
    clean,
    clientId: clean && index % 4 === 0 && level !== 3 ? '' : `fz-${level}-${index}`,
    keepalive: [0, 10, 60, 65535][index % 4],
  };
  if (will) {
    p.will = { topic: `fz/will/${index}`, payload: Buffer.from(`will-${index}`), qos: will[0], retain: will[1] };
    if (props) {
      p.will.properties = {
        willDelayInterval: 5,
        payloadFormatIndicator: true,
        messageExpiryInterval: 60,
        contentType: 'text/plain',
        responseTopic: 'fz/will/response',
        correlationData: Buffer.from('will-corr'),
        userProperties: USER_PROPERTIES,
      };
    }
  }
  if (username) p.username = `fz-user-${index}`;
  if (password) p.password = Buffer.from(`fz-pass-${index}`);
  if (props) {
    p.properties = {
      sessionExpiryInterval: 30,
      receiveMaximum: 10,
      maximumPacketSize: index % 2 ? 1024 : 100_000,
      topicAliasMaximum: 4,
      requestResponseInformation: true,
      requestProblemInformation: index % 3 !== 0,
      userProperties: USER_PROPERTIES,
    };
  }
  return p;
}

function connectStrings(p) {
  const w = p.will;
  const s = [p.protocolId, p.clientId, p.username, p.password, w?.topic, w?.payload];
  if (w?.properties) s.push(w.properties.contentType, w.properties.responseTopic, w.properties.correlationData);
  for (const up of [p.properties?.userProperties, w?.properties?.userProperties]) {
    if (up) for (const [k, v] of Object.entries(up)) s.push(k, ...[v].flat());
  }
  return s;
}

function connectVarints(level, bytes) {
  if (level !== 5) return [];
  const at = fixedHeaderLength(bytes) + 10; // protocol name (6), level, flags, keepalive
  const props = readVarint(bytes, at);
  const out = [at];
  const flags = bytes[at - 3];
  if (flags & 0x04) {
    const clientIdAt = at + props.bytes + props.value;
    out.push(clientIdAt + 2 + bytes.readUInt16BE(clientIdAt)); // Will Properties length
  }
  return out;
}

/** A level-`level` CONNECT with the Password flag and no User Name (MQTT-3.1.2-22 forbids it at 3.1.1; allowed at 5). */
function passwordWithoutUsername(level) {
  const p = connectPacket(level, { clean: true, will: null, username: true, password: true, props: false, index: 999 });
  const full = mqtt.generate(p, { protocolVersion: level === 5 ? 5 : 4 });
  const fh = fixedHeaderLength(full);
  const name = Buffer.from(p.username);
  const at = full.indexOf(name, fh) - 2;
  const body = Buffer.concat([full.subarray(fh, at), full.subarray(at + 2 + name.length)]);
  const flagsAt = level === 3 ? 2 + 6 + 1 : 2 + 4 + 1; // in the body: name length, name, level
  body[flagsAt] &= ~0x80;
  const bytes = Buffer.concat([Buffer.from([0x10]), varint(body.length), body]);
  const fixed = fixedHeaderLength(bytes);
  return {
    name: `connect v${level} password without username`,
    level,
    cmd: 'connect',
    bytes,
    u16s: lengthFields(bytes, [p.protocolId, p.clientId, p.password]),
    varints: level === 5 ? [fixed + 10] : [],
  };
}

function connects(level) {
  const out = [];
  let index = 0;
  for (const props of level === 5 ? [false, true] : [false]) {
    for (const clean of [true, false]) {
      for (const will of WILLS) {
        for (const username of [false, true]) {
          for (const password of [false, true]) {
            if (password && !username) continue; // mqtt-packet refuses it; built by hand below
            const p = connectPacket(level, { clean, will, username, password, props, index: index++ });
            const bytes = mqtt.generate(p, { protocolVersion: level === 5 ? 5 : 4 });
            const name = `connect v${level} clean=${+clean} will=${will ? `q${will[0]}${will[1] ? 'r' : ''}` : '-'} user=${+username} pass=${+password}${props ? ' props' : ''}`;
            out.push({ name, level, cmd: 'connect', bytes, u16s: lengthFields(bytes, connectStrings(p)), varints: connectVarints(level, bytes) });
          }
        }
      }
    }
  }
  out.push(passwordWithoutUsername(level));
  if (level === 5) {
    const p = connectPacket(5, { clean: true, will: null, username: false, password: false, props: true, index: index++ });
    p.properties.authenticationMethod = 'SCRAM-SHA-1';
    p.properties.authenticationData = Buffer.from('client-first');
    const bytes = mqtt.generate(p, { protocolVersion: 5 });
    out.push({
      name: 'connect v5 authentication method',
      level,
      cmd: 'connect',
      bytes,
      u16s: lengthFields(bytes, [...connectStrings(p), 'SCRAM-SHA-1', p.properties.authenticationData]),
      varints: connectVarints(5, bytes),
    });
  }
  return out;
}

// ---- everything after CONNECT ----------------------------------------------------------------

const PUBLISH_PROPS = [
  ['no props', undefined],
  ['topic alias set', { topicAlias: 1 }],
  ['response topic', { responseTopic: 'fz/response', correlationData: Buffer.from('fz-corr-1') }],
  ['user props', { userProperties: USER_PROPERTIES }],
  ['format', { payloadFormatIndicator: true, contentType: 'application/json' }],
  ['expiry', { messageExpiryInterval: 30 }],
  [
    'all',
    {
      topicAlias: 2,
      responseTopic: 'fz/response/all',
      correlationData: Buffer.from([0, 0xff, 1]),
      userProperties: USER_PROPERTIES,
      payloadFormatIndicator: true,
      contentType: 'application/json',
      messageExpiryInterval: 30,
    },
  ],
];

function publish(level, name, topic, payload, qos, id, flags, properties) {
  const p = {
    cmd: 'publish',
    topic,
    payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
    qos,
    retain: flags.retain ?? false,
    dup: flags.dup ?? false,
  };
  if (qos > 0) p.messageId = id;
  if (properties) p.properties = properties;
  const strings = [topic, properties?.responseTopic, properties?.correlationData, properties?.contentType];
  if (properties?.userProperties) for (const [k, v] of Object.entries(properties.userProperties)) strings.push(k, ...[v].flat());
  const e = entry(name, level, p, strings);
  if (level === 5) e.varints = [fixedHeaderLength(e.bytes) + 2 + Buffer.byteLength(topic) + (qos > 0 ? 2 : 0)];
  return e;
}

function publishes(level) {
  const out = [];
  let id = 1;
  for (const [topic, payload] of REQUESTS) {
    for (const qos of [0, 1, 2]) {
      const flags = { retain: id % 5 === 0, dup: qos > 0 && id % 3 === 0 };
      const propsList = level === 5 ? PUBLISH_PROPS : [['no props', undefined]];
      for (const [pname, props] of propsList) {
        const messageId = [1, 2, 300, 65535][id % 4];
        out.push(publish(level, `publish v${level} q${qos} ${topic} ${pname}`, topic, payload, qos, messageId, flags, props));
        id++;
      }
    }
  }
  if (level === 5) {
    out.push(publish(5, 'publish v5 topic alias use', '', '{"alias":1}', 0, 0, {}, { topicAlias: 1 }));
    out.push(publish(5, 'publish v5 topic alias use q1', '', '{"alias":1}', 1, 77, {}, { topicAlias: 1 }));
  }
  // Large ones, just under and over the gate's default maxPacketSize (65 536).
  out.push(publish(level, `publish v${level} q0 60 KB`, 'echo/HD_echo/big', Buffer.alloc(60_000, 0x61), 0, 0, {}, undefined));
  out.push(publish(level, `publish v${level} q1 70 KB`, 'echo/HD_echo/huge', Buffer.alloc(70_000, 0x62), 1, 9, {}, undefined));
  return out;
}

function acks(level) {
  const out = [];
  for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp']) {
    for (const messageId of [1, 7, 65535]) {
      out.push(entry(`${cmd} v${level} ${messageId}`, level, { cmd, messageId }));
      if (level === 5) {
        const reasonCode = cmd === 'pubrel' || cmd === 'pubcomp' ? 0x92 : 0x10;
        const e = entry(
          `${cmd} v5 ${messageId} reason+props`,
          5,
          { cmd, messageId, reasonCode, properties: { reasonString: 'fz-reason', userProperties: USER_PROPERTIES } },
          ['fz-reason', 'fza', 'fzb', '1', 'x', 'yé'],
        );
        e.varints = [fixedHeaderLength(e.bytes) + 3];
        out.push(e);
      }
    }
  }
  return out;
}

function subscriptions(level) {
  const out = [];
  const filters = [
    [{ topic: 'fz/a', qos: 0 }],
    [
      { topic: 'fz/+/b', qos: 1 },
      { topic: 'fz/#', qos: 2 },
    ],
    [{ topic: '#', qos: 1 }],
    [{ topic: '$share/g/fz/c', qos: 0 }],
  ];
  let id = 11;
  for (const subs of filters) {
    const v5subs = level === 5 ? subs.map((s, i) => ({ ...s, nl: i % 2 === 0, rap: i % 2 === 1, rh: i % 3 })) : subs;
    const p = { cmd: 'subscribe', messageId: id++, subscriptions: v5subs };
    if (level === 5) p.properties = { subscriptionIdentifier: 5, userProperties: USER_PROPERTIES };
    const e = entry(`subscribe v${level} ${subs.map((s) => s.topic).join(',')}`, level, p, [...subs.map((s) => s.topic), 'fza', 'fzb']);
    if (level === 5) e.varints = [fixedHeaderLength(e.bytes) + 2];
    out.push(e);
    const u = { cmd: 'unsubscribe', messageId: id++, unsubscriptions: subs.map((s) => s.topic) };
    if (level === 5) u.properties = { userProperties: USER_PROPERTIES };
    const ue = entry(`unsubscribe v${level} ${u.unsubscriptions.join(',')}`, level, u, [...u.unsubscriptions, 'fza', 'fzb']);
    if (level === 5) ue.varints = [fixedHeaderLength(ue.bytes) + 2];
    out.push(ue);
  }
  return out;
}

function control(level) {
  const out = [entry(`pingreq v${level}`, level, { cmd: 'pingreq' }), entry(`disconnect v${level}`, level, { cmd: 'disconnect' })];
  if (level === 5) {
    for (const [reasonCode, properties] of [
      [0, { reasonString: 'bye' }],
      [4, { userProperties: USER_PROPERTIES }],
      [0, { sessionExpiryInterval: 10 }],
    ]) {
      const e = entry(`disconnect v5 reason ${reasonCode} ${Object.keys(properties)[0]}`, 5, { cmd: 'disconnect', reasonCode, properties }, [
        'bye',
        'fza',
        'fzb',
      ]);
      e.varints = [fixedHeaderLength(e.bytes) + 1];
      out.push(e);
    }
    for (const reasonCode of [0x00, 0x18, 0x19]) {
      const e = entry(
        `auth v5 reason ${reasonCode}`,
        5,
        {
          cmd: 'auth',
          reasonCode,
          properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from('fz-auth-data'), reasonString: 'fz-auth' },
        },
        ['SCRAM-SHA-1', 'fz-auth-data', 'fz-auth'],
      );
      e.varints = [fixedHeaderLength(e.bytes) + 1];
      out.push(e);
    }
  }
  // Server-to-client types a client must not send: valid packets all the same.
  out.push(entry(`connack v${level}`, level, { cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false }));
  out.push(entry(`suback v${level}`, level, { cmd: 'suback', messageId: 3, granted: [0, 1, 0x80] }));
  out.push(entry(`unsuback v${level}`, level, { cmd: 'unsuback', messageId: 4, ...(level === 5 ? { granted: [0] } : {}) }));
  out.push(entry(`pingresp v${level}`, level, { cmd: 'pingresp' }));
  return out;
}

/** Packet sequences that exercise state after CONNECT: QoS 2 handshake, topic alias set then use, subscribe round. */
function flows(level, packets) {
  const by = (name) => packets.find((p) => p.name === name);
  const out = [
    [`publish v${level} q2 echo/HD_echo/1 no props`, `pubrel v${level} 1`],
    [`subscribe v${level} fz/a`, `unsubscribe v${level} fz/a`, `pingreq v${level}`, `disconnect v${level}`],
    [`publish v${level} q0 user/HD_login/3 no props`, `publish v${level} q1 user/HD_set/4 no props`, `publish v${level} q0 user/HD_get/5 no props`],
  ];
  if (level === 5) out.push(['publish v5 q0 echo/HD_echo/1 topic alias set', 'publish v5 topic alias use', 'publish v5 topic alias use q1']);
  // Frames are not packets (MQTT-6.0.0-2): two legal 60 KB PUBLISHes (3-byte Remaining Length)
  // around a PINGREQ, then one over maxPacketSize; the 'straddle' chunking cuts inside each fixed
  // header, so one WebSocket message holds the tail of a packet and the head of the next.
  out.push([`publish v${level} q0 60 KB`, `pingreq v${level}`, `publish v${level} q0 60 KB`, `publish v${level} q1 70 KB`]);
  return out.map((names) => names.map(by).filter(Boolean));
}

let cached;

/**
 * `{ connects: { 3: [...], 4: [...], 5: [...] }, packets: {...}, flows: {...} }`; each entry
 * `{ name, level, cmd, bytes, u16s, varints }`.
 */
export function corpus() {
  if (cached) return cached;
  const c = { connects: {}, packets: {}, flows: {} };
  for (const level of LEVELS) {
    c.connects[level] = connects(level);
    c.packets[level] = [...publishes(level), ...acks(level), ...subscriptions(level), ...control(level)];
    c.flows[level] = flows(level, c.packets[level]);
  }
  return (cached = c);
}

/** Every packet type present at each level, for the corpus' own check. */
export function corpusTypes(c = corpus()) {
  const out = {};
  for (const level of LEVELS) out[level] = [...new Set([...c.connects[level], ...c.packets[level]].map((e) => e.cmd))].sort();
  return out;
}
