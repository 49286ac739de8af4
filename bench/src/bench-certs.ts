import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A CA, a server certificate for 127.0.0.1 and one client certificate with a URI SAN, made by openssl (EC P-256) in a temporary folder. */
export interface BenchCerts {
  dir: string;
  clientIdentity: string;
  server: { cert: string; key: string; clientCa: string };
  client: { ca: string; cert: string; key: string };
  remove(): void;
}

export function makeBenchCerts(clientIdentity = 'spiffe://strata.bench/load'): BenchCerts {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bench-certs-'));
  const openssl = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=bench-ca']);
  const leaf = (name: string, cn: string, serial: number, san: string): void => {
    openssl(['req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(serial), '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`]);
  };
  leaf('server', 'resolver', 2, 'IP:127.0.0.1');
  leaf('client', 'load', 3, `URI:${clientIdentity}`);
  const f = (n: string): string => path.join(dir, n);
  return {
    dir,
    clientIdentity,
    server: { cert: f('server.crt'), key: f('server.key'), clientCa: f('ca.crt') },
    client: { ca: f('ca.crt'), cert: f('client.crt'), key: f('client.key') },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
