import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Certificates made by openssl at test time (EC P-256, valid two days) in
 * a temporary folder: CAs, and leaves signed by one of them with a CN and
 * optionally a subjectAltName.
 */
export class CertDir {
  readonly dir: string;

  constructor(prefix = 'strata-certs-') {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  private openssl(args: string[]): void {
    const r = spawnSync('openssl', args, { cwd: this.dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  }

  /** `${name}.crt` and `${name}.key`: a self-signed CA. */
  makeCa(name: string): void {
    this.openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`]);
  }

  /**
   * `${name}.crt` and `${name}.key` signed by `ca`. `subject` is a CN, or a
   * whole subject when it starts with "/" ("/O=nobody": no CN at all).
   */
  makeLeaf(name: string, ca: string, subject: string, serial: number, san?: string): void {
    const subj = subject.startsWith('/') ? subject : `/CN=${subject}`;
    this.openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj]);
    fs.writeFileSync(this.file(`${name}.ext`), san ? `subjectAltName=${san}\n` : '');
    this.openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', String(serial), '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`]);
  }

  /** CLI flags: verify the resolver against `ca`, present `who`'s certificate (none when undefined). */
  cliArgs(ca: string | undefined, who: string | undefined): string[] {
    return [...(ca ? ['--tls-ca', this.file(`${ca}.crt`)] : []), ...(who ? ['--tls-cert', this.file(`${who}.crt`), '--tls-key', this.file(`${who}.key`)] : [])];
  }

  /** The client's TLS files for `who` under `ca` (default "ca"). */
  clientTls(who: string, ca = 'ca'): { ca: string; cert: string; key: string } {
    return { ca: this.file(`${ca}.crt`), cert: this.file(`${who}.crt`), key: this.file(`${who}.key`) };
  }

  /** The resolver flags for serving `server` with mutual TLS under `ca`. */
  serverArgs(server: string, ca = 'ca'): string[] {
    return ['--tls-cert', this.file(`${server}.crt`), '--tls-key', this.file(`${server}.key`), '--tls-client-ca', this.file(`${ca}.crt`)];
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
