// Builds one fuzz case from its seed: a sequence of corpus packets (usually CONNECT first),
// mutated at the packet level (Remaining Length, inner string / binary / property lengths,
// type and flags, splices of two packets, truncation, duplication, drops, swaps) and then
// at the byte level (bit flips, byte inserts and deletes, overwrites, slice duplication,
// truncation), then cut into chunks: separate socket writes over TCP, separate WebSocket
// frames (messages, or fragments of one message) over WebSocket. Everything is drawn from
// a PRNG seeded by the case seed, so `buildCase(seed)` always returns the same case.
import { Rng } from './prng.mjs';
import { corpus, LEVELS, readVarint, varint, fixedHeaderLength } from './corpus.mjs';

/** The largest byte stream a case sends (duplicating 70 KB packets is cut here). */
const MAX_STREAM = 256 * 1024;
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x20, 0x30, 0xc0, 0xe0, 0xf0];
const INTERESTING_U16 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff];

/** A packet under mutation: its first byte, its body, and what is known of its fields. */
function unpack(e) {
  const fh = fixedHeaderLength(e.bytes);
  return {
    name: e.name,
    first: e.bytes[0],
    body: Buffer.from(e.bytes.subarray(fh)),
    u16s: e.u16s.map((o) => o - fh),
    varints: e.varints.map((o) => o - fh),
    raw: undefined,
  };
}

/** Bytes of a packet: `raw` when a mutation wrote the Remaining Length by hand, else a correct one. */
function pack(p) {
  return p.raw ?? Buffer.concat([Buffer.from([p.first]), varint(p.body.length), p.body]);
}

/** A Remaining Length other than the true one: off by a little, zero, the maximum, 5 bytes, or not minimal. */
function wrongLength(rng, n) {
  return rng.weighted([
    [4, () => varint(Math.max(0, n + rng.pick([-3, -2, -1, 1, 2, 3])))],
    [2, () => varint(0)],
    [2, () => varint(rng.int(2 * n + 16))],
    [1, () => varint(268_435_455)],
    [1, () => varint(65_537 + rng.int(1000))],
    [1, () => Buffer.from([0x80, 0x80, 0x80, 0x80, 0x01])],
    [1, () => Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f])],
    [1, () => Buffer.concat([varint(n).map((b) => b | 0x80), Buffer.from([0x00])]).subarray(0, 4)], // non-minimal
  ])();
}

const PACKET_MUTATORS = [
  // Remaining Length no longer matches the body.
  [
    6,
    'remaining-length',
    (rng, seq) => {
      const p = rng.pick(seq);
      const rl = wrongLength(rng, p.body.length);
      p.raw = Buffer.concat([Buffer.from([p.first]), rl, p.body]);
      return `${p.name}: remaining length ${p.body.length} -> ${rl.toString('hex')}`;
    },
  ],
  // A 2-byte string / binary length inside the packet.
  [
    6,
    'inner-length',
    (rng, seq) => {
      const candidates = seq.filter((p) => p.u16s.length > 0);
      if (!candidates.length) return undefined;
      const p = rng.pick(candidates);
      const at = rng.pick(p.u16s);
      if (at + 2 > p.body.length) return undefined;
      const old = p.body.readUInt16BE(at);
      const v = rng.chance(0.5) ? Math.max(0, Math.min(0xffff, old + rng.pick([-2, -1, 1, 2, 100]))) : rng.pick(INTERESTING_U16);
      p.body.writeUInt16BE(v, at);
      return `${p.name}: u16 length at ${at} ${old} -> ${v}`;
    },
  ],
  // An MQTT 5 Property Length; the Remaining Length is fixed up half the time so the packet stays framed.
  [
    5,
    'property-length',
    (rng, seq) => {
      const candidates = seq.filter((p) => p.varints.length > 0);
      if (!candidates.length) return undefined;
      const p = rng.pick(candidates);
      const at = rng.pick(p.varints);
      const old = readVarint(p.body, at);
      if (!old.bytes) return undefined;
      const v = rng.weighted([
        [3, () => varint(Math.max(0, old.value + rng.pick([-3, -1, 1, 2, 7])))],
        [2, () => varint(0)],
        [1, () => varint(268_435_455)],
        [1, () => varint(rng.int(70_000))],
        [1, () => Buffer.from([0x80, 0x80, 0x80, 0x80, 0x01])],
      ])();
      p.body = Buffer.concat([p.body.subarray(0, at), v, p.body.subarray(at + old.bytes)]);
      p.u16s = p.u16s.map((o) => (o > at ? o + v.length - old.bytes : o));
      const reframed = rng.chance(0.5);
      if (!reframed) p.raw = Buffer.concat([Buffer.from([p.first]), varint(p.body.length - v.length + old.bytes), p.body]);
      return `${p.name}: property length at ${at} ${old.value} -> ${v.toString('hex')}${reframed ? ' (reframed)' : ''}`;
    },
  ],
  // Packet type and flags: a random nibble, or a reserved flag bit.
  [
    4,
    'type-flags',
    (rng, seq) => {
      const p = rng.pick(seq);
      const old = p.first;
      p.first = rng.chance(0.5) ? (rng.int(16) << 4) | (old & 0x0f) : (old & 0xf0) | rng.int(16);
      return `${p.name}: first byte ${old.toString(16)} -> ${p.first.toString(16)}`;
    },
  ],
  // Head of one packet, tail of another (of any level); reframed half the time.
  [
    4,
    'splice',
    (rng, seq, c) => {
      const a = rng.pick(seq);
      const other = unpack(rng.pick(allPackets(c, rng.pick(LEVELS))));
      const i = rng.int(a.body.length + 1);
      const j = rng.int(other.body.length + 1);
      a.body = Buffer.concat([a.body.subarray(0, i), other.body.subarray(j)]);
      a.u16s = a.u16s.filter((o) => o + 2 <= i);
      a.varints = a.varints.filter((o) => o < i);
      const reframed = rng.chance(0.5);
      if (!reframed) a.raw = Buffer.concat([Buffer.from([a.first]), varint(i + (other.body.length - j) + rng.pick([-1, 0, 1, 5])), a.body]);
      return `splice ${a.name}[..${i}] + ${other.name}[${j}..]${reframed ? ' (reframed)' : ''}`;
    },
  ],
  [
    3,
    'truncate-packet',
    (rng, seq) => {
      const p = rng.pick(seq);
      const bytes = pack(p);
      const cut = rng.int(bytes.length);
      p.raw = bytes.subarray(0, cut);
      return `${p.name}: cut to ${cut} of ${bytes.length} bytes`;
    },
  ],
  [
    3,
    'duplicate',
    (rng, seq) => {
      const i = rng.int(seq.length);
      const times = rng.weighted([
        [6, 1 + rng.int(3)],
        [3, 5 + rng.int(20)],
        [1, 100 + rng.int(400)],
      ]);
      const copies = [];
      for (let k = 0; k < times; k++) copies.push({ ...seq[i], body: Buffer.from(seq[i].body) });
      seq.splice(i + 1, 0, ...copies);
      return `${seq[i].name}: repeated ${times} more times`;
    },
  ],
  [
    2,
    'insert-packet',
    (rng, seq, c) => {
      const e = rng.pick(allPackets(c, rng.pick(LEVELS)));
      const at = rng.int(seq.length + 1);
      seq.splice(at, 0, unpack(e));
      return `inserted ${e.name} at ${at}`;
    },
  ],
  [
    2,
    'drop',
    (rng, seq) => {
      if (seq.length < 2) return undefined;
      const [p] = seq.splice(rng.int(seq.length), 1);
      return `dropped ${p.name}`;
    },
  ],
  [
    1,
    'swap',
    (rng, seq) => {
      if (seq.length < 2) return undefined;
      const i = rng.int(seq.length);
      const j = rng.int(seq.length);
      [seq[i], seq[j]] = [seq[j], seq[i]];
      return `swapped ${i} and ${j}`;
    },
  ],
];

const STREAM_MUTATORS = [
  [
    6,
    'bit-flip',
    (rng, s) => {
      if (!s.length) return [s, undefined];
      const n = rng.weighted([
        [6, 1],
        [3, 2 + rng.int(3)],
        [1, 8 + rng.int(24)],
      ]);
      const out = Buffer.from(s);
      // Half the flips land in the first 16 bytes of the stream (fixed and variable headers).
      for (let k = 0; k < n; k++) out[rng.chance(0.5) ? rng.int(Math.min(16, out.length)) : rng.int(out.length)] ^= 1 << rng.int(8);
      return [out, `flipped ${n} bits`];
    },
  ],
  [
    3,
    'insert-bytes',
    (rng, s) => {
      const at = rng.int(s.length + 1);
      const add = rng.chance(0.5) ? rng.bytes(1 + rng.int(16)) : Buffer.alloc(1 + rng.int(8), rng.pick(INTERESTING_BYTES));
      return [Buffer.concat([s.subarray(0, at), add, s.subarray(at)]), `inserted ${add.toString('hex')} at ${at}`];
    },
  ],
  [
    3,
    'delete-bytes',
    (rng, s) => {
      if (!s.length) return [s, undefined];
      const at = rng.int(s.length);
      const n = 1 + rng.int(Math.min(16, s.length - at));
      return [Buffer.concat([s.subarray(0, at), s.subarray(at + n)]), `deleted ${n} bytes at ${at}`];
    },
  ],
  [
    3,
    'overwrite',
    (rng, s) => {
      if (!s.length) return [s, undefined];
      const out = Buffer.from(s);
      const at = rng.int(out.length);
      out[at] = rng.pick(INTERESTING_BYTES);
      return [out, `byte ${at} := ${out[at].toString(16)}`];
    },
  ],
  [
    1,
    'duplicate-slice',
    (rng, s) => {
      if (!s.length) return [s, undefined];
      const at = rng.int(s.length);
      const n = 1 + rng.int(Math.min(64, s.length - at));
      const times = 1 + rng.int(8);
      const slice = s.subarray(at, at + n);
      return [Buffer.concat([s.subarray(0, at + n), ...Array(times).fill(slice), s.subarray(at + n)]), `slice ${at}+${n} repeated ${times}x`];
    },
  ],
  [
    2,
    'truncate',
    (rng, s) => {
      const cut = rng.int(s.length + 1);
      return [s.subarray(0, cut), `stream cut to ${cut} of ${s.length}`];
    },
  ],
];

const LARGE = /\b(60|70) KB$/;

/** Non-CONNECT packets of a level (cached per corpus). */
function allPackets(c, level) {
  return c.packets[level];
}

function smallPackets(c, level) {
  return ((c.small ??= {})[level] ??= c.packets[level].filter((e) => !LARGE.test(e.name)));
}

/** The unmutated packet sequence of a case. */
function baseSequence(rng, c, level) {
  const seq = [];
  if (rng.chance(0.94)) seq.push(unpack(rng.pick(c.connects[level])));
  if (rng.chance(0.25)) {
    for (const e of rng.pick(c.flows[level])) seq.push(unpack(e));
  } else {
    const n = rng.weighted([
      [2, 0],
      [4, 1],
      [3, 2],
      [2, 3 + rng.int(4)],
    ]);
    for (let k = 0; k < n; k++) {
      const from = rng.chance(0.08) ? rng.pick(LEVELS) : level; // now and then a packet of another level
      seq.push(unpack(rng.pick(smallPackets(c, from))));
    }
  }
  if (rng.chance(0.02)) seq.push(unpack(rng.pick(c.packets[level].filter((e) => LARGE.test(e.name)))));
  if (!seq.length) seq.push(unpack(rng.pick(c.connects[level])));
  return seq;
}

/**
 * Cuts `stream` into chunks; over WebSocket each is a message, or a fragment of one continued by
 * the next. `starts`: where the base sequence's packets began (before stream mutations), for the
 * `straddle` mode, which cuts 1 to 3 bytes into each packet (inside its fixed header: after the
 * type byte, inside a multi-byte Remaining Length), so chunks mix packet and frame boundaries.
 */
function chunk(rng, stream, transport, starts = []) {
  const n = stream.length;
  let cuts;
  const mode = rng.weighted([
    [3, 'one'],
    [4, 'few'],
    [2, 'many'],
    [n <= 96 ? 1 : 0, 'bytes'],
    [starts.length > 1 ? 2 : 0, 'straddle'],
  ]);
  if (mode === 'one' || n < 2) cuts = [];
  else if (mode === 'bytes') cuts = Array.from({ length: n - 1 }, (_, i) => i + 1);
  else if (mode === 'straddle') cuts = [...new Set(starts.map((at) => at + 1 + rng.int(3)).filter((at) => at < n))].sort((a, b) => a - b);
  else {
    const k = mode === 'few' ? 1 + rng.int(3) : 4 + rng.int(28);
    cuts = [...new Set(Array.from({ length: k }, () => 1 + rng.int(n - 1)))].sort((a, b) => a - b);
  }
  const chunks = [];
  let from = 0;
  for (const at of [...cuts, n]) {
    chunks.push({ bytes: stream.subarray(from, at) });
    from = at;
  }
  if (transport === 'ws') {
    for (const ch of chunks) ch.fin = !rng.chance(0.15);
    chunks[chunks.length - 1].fin = true;
  }
  return chunks;
}

/**
 * The case of seed `seed`: `{ seed, transport: 'tcp' | 'ws', level, base: [names],
 * mutations: [descriptions], chunks: [{ bytes, fin? }], text }` (`text`: the first
 * WebSocket frame is a text frame, which the gate must refuse).
 * @param opts.transports the transports to draw from (default both)
 * @param opts.levels the protocol levels of the base sequence (default 3, 4, 5; mutations may still mix in packets of any level)
 */
export function buildCase(seed, opts = {}, c = corpus()) {
  const rng = new Rng(seed);
  const transports = opts.transports ?? ['tcp', 'ws'];
  const transport = rng.pick(transports);
  const level = rng.pick(opts.levels ?? LEVELS);
  const seq = baseSequence(rng, c, level);
  const base = seq.map((p) => p.name);
  const mutations = [];
  const packetOps = rng.weighted([
    [1, 0],
    [5, 1],
    [3, 2],
    [2, 3 + rng.int(4)],
  ]);
  for (let k = 0; k < packetOps; k++) {
    const [, name, fn] = rng.weighted(PACKET_MUTATORS.map((m) => [m[0], m]));
    const what = fn(rng, seq, c);
    if (what) mutations.push(`${name}: ${what}`);
  }
  const packed = seq.map(pack);
  const starts = packed.map((_, i) => packed.slice(0, i).reduce((sum, b) => sum + b.length, 0));
  let stream = Buffer.concat(packed);
  const streamOps = rng.weighted([
    [4, 0],
    [4, 1],
    [2, 2 + rng.int(3)],
  ]);
  for (let k = 0; k < streamOps; k++) {
    const [, name, fn] = rng.weighted(STREAM_MUTATORS.map((m) => [m[0], m]));
    const [out, what] = fn(rng, stream);
    stream = out;
    if (what) mutations.push(`${name}: ${what}`);
  }
  if (stream.length > MAX_STREAM) {
    stream = stream.subarray(0, MAX_STREAM);
    mutations.push(`capped at ${MAX_STREAM} bytes`);
  }
  const text = transport === 'ws' && rng.chance(0.01);
  return { seed, transport, level, base, mutations, chunks: chunk(rng, stream, transport, starts), text };
}

/** The whole byte stream of a case. */
export function caseBytes(kase) {
  return Buffer.concat(kase.chunks.map((ch) => ch.bytes));
}
