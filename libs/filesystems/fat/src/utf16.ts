/**
 * UTF-16 units to UTF-8 as the kernel's utf16s_to_utf8s converts a long
 * name for a vfat mount with the utf8 option: stops at a NUL unit or after
 * `maxUnits`; a lone surrogate is dropped, not replaced.
 */
export function utf16ToUtf8(units: ArrayLike<number>, maxUnits: number): Buffer {
  const out: number[] = [];
  const n = Math.min(units.length, maxUnits);
  for (let i = 0; i < n; ) {
    let u = units[i] ?? 0;
    if (u === 0) break;
    i++;
    if (u >= 0xd800 && u <= 0xdfff) {
      if (u >= 0xdc00) continue;
      if (i >= n) break;
      const v = units[i] ?? 0;
      if (v < 0xdc00 || v > 0xdfff) continue;
      u = 0x10000 + ((u & 0x3ff) << 10) + (v & 0x3ff);
      i++;
    }
    pushUtf8(out, u);
  }
  return Buffer.from(out);
}

function pushUtf8(out: number[], cp: number): void {
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
}
