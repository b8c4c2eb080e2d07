import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';

/** What the page needs to know to connect: the gate's MQTT/WebSocket port and path, and whether CONNECT needs a JWT. */
export interface PageConfig {
  wsPort: number;
  wsPath: string;
  jwt: boolean;
}

/** The demo page's own files (packages/demo/web), the SDK's ESM build and MQTT.js's browser ESM bundle. */
const WEB_DIR = join(__dirname, '..', 'web');
const SDK_DIR = join(dirname(require.resolve('@mqgate/sdk/package.json')), 'dist', 'esm');
const MQTT_ESM = join(dirname(require.resolve('mqtt/package.json')), 'dist', 'mqtt.esm.js');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.png': 'image/png',
};

/** A file name the server hands out: one path level, no `..`, a known extension. */
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*\.(html|js|css|map|png)$/;
/** Longest request path served, characters (anything longer is a 404 without a lookup). */
const MAX_PATH = 200;

/** The file a GET path maps to, or undefined (404). */
function fileFor(path: string): string | undefined {
  if (path === '/') return join(WEB_DIR, 'index.html');
  if (path === '/vendor/mqtt.esm.js') return MQTT_ESM;
  const m = /^\/(sdk\/)?([^/]+)$/.exec(path);
  if (!m || !FILE_NAME.test(m[2]!)) return undefined;
  return join(m[1] ? SDK_DIR : WEB_DIR, m[2]!);
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, head: boolean): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
  });
  res.end(head ? undefined : body);
}

async function handle(req: IncomingMessage, res: ServerResponse, config: PageConfig): Promise<void> {
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, 'text/plain', 'GET or HEAD only\n', false);
  }
  const url = req.url ?? '/';
  const path = url.length > MAX_PATH ? '' : url.split('?')[0]!;
  if (path === '/config.json') return send(res, 200, TYPES['.json']!, JSON.stringify(config), head);
  const file = fileFor(path);
  if (!file) return send(res, 404, 'text/plain', 'not found\n', head);
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch {
    return send(res, 404, 'text/plain', 'not found\n', head);
  }
  send(res, 200, TYPES[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream', body, head);
}

/**
 * The demo page over plain HTTP (node:http, no framework): `/` the chat page, `/sdk/*.js`
 * the SDK's ESM build, `/vendor/mqtt.esm.js` MQTT.js's browser bundle, `/config.json` the
 * gate's WebSocket port. Static files only; GET and HEAD, else 405; anything else 404.
 * @throws Error when the port cannot be bound (EADDRINUSE…).
 */
export async function startWebServer(port: number, host: string | undefined, config: PageConfig): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer((req, res) => {
    handle(req, res, config).catch(() => {
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n', false);
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, address: server.address() as AddressInfo };
}

/** Stops accepting and closes idle keep-alive connections. */
export function stopWebServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
