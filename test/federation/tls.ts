import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

export interface TestCert {
  certificatePath: string;
  privateKeyPath: string;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A throwaway certificate authority in `dir` (ca.pem, ca.key). */
export function createTestCa(dir: string, name = 'ca'): { caPath: string; keyPath: string } {
  const caPath = join(dir, `${name}.pem`);
  const keyPath = join(dir, `${name}.key`);
  openssl(['req', '-x509', ...EC, '-keyout', keyPath, '-out', caPath, '-days', '2', '-subj', `/CN=Skjol test ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { caPath, keyPath };
}

/** A server certificate for localhost and 127.0.0.1, issued by the CA. */
export function issueCert(dir: string, name: string, ca: { caPath: string; keyPath: string }): TestCert {
  const privateKeyPath = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const certificatePath = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl(['req', ...EC, '-keyout', privateKeyPath, '-out', csr, '-subj', `/CN=${name}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.caPath, '-CAkey', ca.keyPath, '-CAcreateserial', '-out', certificatePath, '-days', '2', '-extfile', ext]);
  return { certificatePath, privateKeyPath };
}

export interface RawResult {
  status: number;
  body: any;
}

/** A raw HTTPS request trusting `ca`, for requests a FederationClient would never send (bad signatures …). */
export function httpsJson(url: string, options: { ca: string; method?: string; headers?: Record<string, string>; body?: unknown }): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const req = request(url, {
      method: options.method ?? 'GET',
      ca: options.ca,
      headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...options.headers },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // leave as text
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.end(payload);
  });
}
