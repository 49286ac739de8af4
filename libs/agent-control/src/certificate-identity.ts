import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';

/**
 * Who a PEM certificate says its holder is, as a resolver's grants name it:
 * its first URI SAN (spiffe://...), else its subject. Undefined when the file
 * cannot be read or parsed (status output says "unreadable" rather than fail).
 */
export function certificateIdentity(certFile: string): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(fs.readFileSync(certFile));
  } catch {
    return undefined;
  }
  const uri = /(?:^|,\s*)URI:([^,]+)/.exec(cert.subjectAltName ?? '');
  if (uri) return uri[1];
  return cert.subject.split('\n').filter(Boolean).join(', ');
}
