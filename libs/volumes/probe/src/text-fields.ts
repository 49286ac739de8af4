/** blkid_probe_set_uuid: lower-case 8-4-4-4-12; an all-zero uuid is no uuid. */
export function uuidText(b: Buffer): string | undefined {
  if (b.length !== 16 || b.every((x) => x === 0)) return undefined;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** blkid_probe_set_label: the bytes up to the first NUL, trailing whitespace removed; empty is no label. */
export function labelText(b: Buffer, encoding: BufferEncoding = 'utf8'): string | undefined {
  const text = b.toString(encoding);
  const nul = text.indexOf('\0');
  const s = (nul < 0 ? text : text.slice(0, nul)).replace(/\s+$/u, '');
  return s === '' ? undefined : s;
}

/** A NUL-terminated string field (blkid_probe_strncpy_uuid). */
export function cString(b: Buffer): string | undefined {
  let end = b.indexOf(0);
  if (end < 0) end = b.length;
  const s = b.subarray(0, end).toString('latin1');
  return s === '' ? undefined : s;
}

/** "%02X%02X-%02X%02X" of a little-endian 32-bit serial (FAT, exFAT volume ids). */
export function serialText(b: Buffer): string {
  const h = (i: number): string => b[i].toString(16).toUpperCase().padStart(2, '0');
  return `${h(3)}${h(2)}-${h(1)}${h(0)}`;
}

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}
