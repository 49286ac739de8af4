/**
 * An 8.3 name as a vfat mount with the default shortname=mixed shows it
 * (fs/fat/dir.c fat_parse_short): bytes through codepage 437, the base
 * and extension lower-cased when byte 12 says so (Windows NT's flags),
 * trailing spaces dropped, a '.' only before a non-empty extension, a
 * leading 0x05 standing for 0xe5. Empty when the name has no non-space
 * character (the kernel skips such an entry).
 */
import { cp437Lower, cp437ToUnicode } from './cp437';
import { CASE_LOWER_BASE, CASE_LOWER_EXT } from './dir-entry';
import { utf16ToUtf8 } from './utf16';

const QUESTION_MARK = 0x3f;
const MAX_UNI_CHARS = 255;

function unitOf(byte: number, lower: boolean): number {
  const b = lower ? cp437Lower(byte) : byte;
  return cp437ToUnicode(b) ?? QUESTION_MARK;
}

export function shortNameUtf8(raw: Buffer, lcase: number): Buffer {
  const work = Buffer.from(raw.subarray(0, 11));
  if (work[0] === 0x05) work[0] = 0xe5;
  const units: number[] = [];
  let used = 0;
  const lowerBase = (lcase & CASE_LOWER_BASE) !== 0;
  for (let i = 0; i < 8; i++) {
    const c = work[i] ?? 0;
    if (c === 0) break;
    units.push(unitOf(c, lowerBase));
    if (c !== 0x20) used = units.length;
  }
  units.length = used;
  units.push(0x2e);
  const lowerExt = (lcase & CASE_LOWER_EXT) !== 0;
  for (let k = 8; k < 11; k++) {
    const c = work[k] ?? 0;
    if (c === 0) break;
    units.push(unitOf(c, lowerExt));
    if (c !== 0x20) used = units.length;
  }
  units.length = used;
  return utf16ToUtf8(units, MAX_UNI_CHARS);
}
