import { readFileSync } from 'node:fs';
import { Errno, StrataError, errorMessage } from '@strata/errors';

/** Certificates are a few KiB; a bigger file is a mistake (a disk image named by accident), not read whole. */
export const MAX_PEM_BYTES = 1 << 20;

/**
 * A certificate, key or CA file of either end of the strata.v1 transport;
 * a problem is one EINVAL naming the file and what it was meant to be.
 */
export function readPemFile(file: string, what: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    throw new StrataError(Errno.EINVAL, `cannot read the TLS ${what} ${file}: ${errorMessage(err)}`, { cause: err });
  }
  if (data.length > MAX_PEM_BYTES) throw new StrataError(Errno.EINVAL, `the TLS ${what} ${file} is larger than ${MAX_PEM_BYTES} bytes`);
  return data;
}
