/**
 * UTF-16LE names to bytes exactly as ntfs-3g's ntfs_ucstombs renders them:
 * UTF-8, stopping at a NUL unit, and an unpaired surrogate encoded on its
 * own as three bytes (ntfs-3g's ALLOW_BROKEN_UNICODE).
 */
export function utf16ToBytes(name: Buffer): Buffer {
  const out: number[] = [];
  const units = name.length >> 1;
  const three = (c: number): void => {
    out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  };
  for (let i = 0; i < units; i++) {
    const c = name.readUInt16LE(2 * i);
    if (c === 0) break;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < units) {
      const d = name.readUInt16LE(2 * i + 2);
      if (d >= 0xdc00 && d < 0xe000) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
        i++;
      } else three(c);
    } else three(c);
  }
  return Buffer.from(out);
}

/** The inverse, for names a caller looks up: undefined when the bytes are not such a rendering. */
export function bytesToUtf16(bytes: Buffer): Buffer | undefined {
  const units: number[] = [];
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let cp: number;
    let n: number;
    if (b < 0x80) {
      cp = b;
      n = 1;
    } else if (b >= 0xc2 && b < 0xe0) {
      cp = b & 0x1f;
      n = 2;
    } else if (b >= 0xe0 && b < 0xf0) {
      cp = b & 0x0f;
      n = 3;
    } else if (b >= 0xf0 && b < 0xf5) {
      cp = b & 0x07;
      n = 4;
    } else return undefined;
    if (i + n > bytes.length) return undefined;
    for (let k = 1; k < n; k++) {
      const c = bytes[i + k];
      if ((c & 0xc0) !== 0x80) return undefined;
      cp = (cp << 6) | (c & 0x3f);
    }
    if ((n === 3 && cp < 0x800) || (n === 4 && (cp < 0x10000 || cp > 0x10ffff))) return undefined;
    if (cp === 0) return undefined;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else units.push(cp);
    i += n;
  }
  const out = Buffer.alloc(units.length * 2);
  units.forEach((u, k) => out.writeUInt16LE(u, 2 * k));
  return out;
}
