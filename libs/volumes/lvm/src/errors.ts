import { Errno, StrataError, isStrataError } from '@strata/errors';

/** A corrupt LVM2 structure: EUCLEAN, as the kernel reports a structure needing cleaning. */
export function corrupt(message: string): StrataError {
  return new StrataError(Errno.EUCLEAN, `LVM2: ${message}`);
}

/** A checksum mismatch: EBADMSG. */
export function badChecksum(message: string): StrataError {
  return new StrataError(Errno.EBADMSG, `LVM2: ${message}`);
}

export function unsupported(message: string): StrataError {
  return new StrataError(Errno.EOPNOTSUPP, `LVM2: ${message}`);
}

/** Every public entry point runs through here: nothing but a StrataError leaves the package. */
export async function guarded<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw isStrataError(err) ? err : StrataError.from(err, `LVM2 ${op}: internal error`);
  }
}

export function guardedSync<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw isStrataError(err) ? err : StrataError.from(err, `LVM2 ${op}: internal error`);
  }
}
