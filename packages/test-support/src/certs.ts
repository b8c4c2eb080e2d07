/**
 * TLS material made at test time with the openssl CLI (never committed): a throwaway CA, a
 * server certificate for localhost / 127.0.0.1, and client certificates, in a temp folder.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  /** Paths of the PEM files. */
  caCert: string;
  serverKey: string;
  serverCert: string;
  clientKey: string;
  clientCert: string;
  /** The PEM bytes of a path. */
  read(path: string): Buffer;
  /**
   * Issues another certificate signed by the CA (P-256 key), e.g. a rotated server certificate.
   * @returns the paths of its key and certificate
   */
  issue(name: string, subject: string, extensions: string): { key: string; cert: string };
  remove(): void;
}

const SERVER_EXT = 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n';
const CLIENT_EXT = 'extendedKeyUsage=clientAuth\n';

/** Makes a CA, a server certificate (CN=localhost) and a client certificate (CN=device-17, O=acme). */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'mqgate-pki-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...newKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=mqgate test CA');
  const issue = (name: string, subject: string, extensions: string) => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    ssl('req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    );
    return { key: join(dir, `${name}.key`), cert: join(dir, `${name}.crt`) };
  };
  const server = issue('server', '/CN=localhost', SERVER_EXT);
  const client = issue('client', '/O=acme/CN=device-17', CLIENT_EXT);
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    serverKey: server.key,
    serverCert: server.cert,
    clientKey: client.key,
    clientCert: client.cert,
    read: (p) => readFileSync(p),
    issue: (name, subject, ext) => issue(name, subject, ext),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Extensions of a server certificate for localhost and 127.0.0.1 (for `TestPki.issue`). */
export const SERVER_CERT_EXTENSIONS = SERVER_EXT;
