import { Buffer } from 'node:buffer';

/** Whether a name is valid UTF-8 (the fixtures keep some that are not). */
export function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}
