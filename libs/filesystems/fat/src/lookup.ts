/**
 * Finding a name in a directory. The kernel's vfat lookup (vfat_find →
 * fat_search_long) matches the long name or the 8.3 name, ignoring
 * trailing dots of the name asked for and, with the usual utf8 option over
 * an ASCII-family iocharset, the case of ASCII letters. An exact match is
 * preferred here so that every listed name leads to its own entry even on
 * an image with names differing only in case (never written by a FAT
 * driver, which refuses them).
 */
import type { DirRecord } from './directory-scan';

const DOT = 0x2e;

function stripTrailingDots(name: Buffer): Buffer {
  let n = name.length;
  while (n > 0 && name[n - 1] === DOT) n--;
  return name.subarray(0, n);
}

function asciiFold(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b + 0x20 : b;
}

function foldEquals(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (asciiFold(a[i] ?? 0) !== asciiFold(b[i] ?? 0)) return false;
  return true;
}

export function lookupRecord(records: readonly DirRecord[], name: Buffer): DirRecord | undefined {
  if (name.length === 0 || name.includes(0x2f) || name.equals(Buffer.from('.')) || name.equals(Buffer.from('..'))) return undefined;
  const exact = records.find((r) => r.name.equals(name));
  if (exact) return exact;
  const wanted = stripTrailingDots(name);
  if (wanted.length === 0) return undefined;
  return records.find((r) => foldEquals(r.name, wanted) || foldEquals(r.shortName, wanted));
}
