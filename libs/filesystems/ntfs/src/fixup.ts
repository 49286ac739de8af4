import { corrupt } from './errors';

/** NTFS protects multi-sector records in 512-byte strides whatever the device's sector size. */
const STRIDE = 512;

/**
 * Applies the update sequence array of a multi-sector record (FILE, INDX,
 * RSTR) to a copy: the last two bytes of every 512-byte stride must hold the
 * update sequence number (else the record was torn while written) and are
 * replaced by the saved bytes.
 */
export function applyFixups(raw: Buffer, what: string): Buffer {
  const buf = Buffer.from(raw);
  if (buf.length < 8) throw corrupt(what, 'too short for a record header');
  const usaOfs = buf.readUInt16LE(4);
  const usaCount = buf.readUInt16LE(6);
  const strides = buf.length / STRIDE;
  if (usaCount === 0 || usaCount - 1 !== strides || (usaOfs & 1) !== 0 || usaOfs + usaCount * 2 > buf.length || usaOfs < 8) {
    throw corrupt(what, `update sequence array at ${usaOfs} with ${usaCount} entries for ${buf.length} bytes`);
  }
  const usn = buf.readUInt16LE(usaOfs);
  for (let i = 0; i < strides; i++) {
    const end = (i + 1) * STRIDE - 2;
    if (buf.readUInt16LE(end) !== usn) throw corrupt(what, `torn write: sector ${i} does not end with the update sequence number`);
    buf.writeUInt16LE(raw.readUInt16LE(usaOfs + 2 + 2 * i), end);
  }
  return buf;
}
