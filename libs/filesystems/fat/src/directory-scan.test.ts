import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ATTR_DIR, ATTR_VOLUME, CASE_LOWER_BASE, CASE_LOWER_EXT, shortNameChecksum } from './dir-entry';
import { scanDirectory } from './directory-scan';
import { lookupRecord } from './lookup';
import { shortNameUtf8 } from './short-name';
import { lfnSlots, shortEntry, utf16Units } from './entry-fixtures';

const names = (dir: Buffer[]): string[] => scanDirectory(Buffer.concat(dir), dir.length, false).records.map((r) => r.name.toString('utf8'));

test('checksum of an 8.3 name matches the documented rotate-and-add', () => {
  // "README  TXT": computed by hand with sum = ror1(sum) + byte.
  let sum = 0;
  for (const c of Buffer.from('README  TXT', 'latin1')) sum = (((sum & 1) << 7) + (sum >> 1) + c) & 0xff;
  assert.equal(shortNameChecksum(Buffer.from('README  TXT', 'latin1')), sum);
  assert.notEqual(shortNameChecksum(Buffer.from('README  TXT', 'latin1')), shortNameChecksum(Buffer.from('README  TXU', 'latin1')));
});

test('long names assemble across slots, in UTF-8, surrogate pairs included', () => {
  const long = 'A long name spanning three slots.text';
  const emoji = '\u{1F600} smile.bin';
  const dir = [...lfnSlots(utf16Units(long), 'ALONGN~1TEX'), shortEntry('ALONGN~1TEX'), ...lfnSlots(utf16Units(emoji), '_SMILE  BIN'), shortEntry('_SMILE  BIN')];
  assert.deepEqual(names(dir), [long, emoji]);
});

test('a name of exactly 13 units (no terminator, no padding) is whole', () => {
  const n = 'abcdefghij.tx';
  assert.equal(n.length, 13);
  assert.deepEqual(names([...lfnSlots(utf16Units(n), 'ABCDEF~1TX '), shortEntry('ABCDEF~1TX ')]), [n]);
});

test('a lone surrogate is dropped as utf16s_to_utf8s drops it', () => {
  assert.deepEqual(names([...lfnSlots([0x61, 0xd800, 0x62], 'AB         '), shortEntry('AB         ')]), ['ab']);
});

test('slots whose checksum does not match the short entry are ignored: the short name is shown', () => {
  const dir = [...lfnSlots(utf16Units('Orphan Name.txt'), 'ORPHAN~1TXT', 0x12), shortEntry('ORPHAN~1TXT')];
  assert.deepEqual(names(dir), ['ORPHAN~1.TXT']);
});

test('deleted, volume and dot entries are never listed; 0x00 does not end the directory', () => {
  const deleted = shortEntry('\xe5ONE    TXT');
  const dir = [
    shortEntry('.          ', { attr: ATTR_DIR }),
    shortEntry('..         ', { attr: ATTR_DIR }),
    shortEntry('LABEL      ', { attr: ATTR_VOLUME }),
    deleted,
    ...lfnSlots(utf16Units('gone.txt'), '\xe5ONE    TXT'),
    Buffer.alloc(32),
    shortEntry('AFTER   TXT'),
  ];
  // The slots before a deleted entry are dropped with it (PARSE_INVALID).
  const dir2 = [...dir.slice(0, 4), ...lfnSlots(utf16Units('gone.txt'), '\xe5ONE    TXT'), deleted, Buffer.alloc(32), shortEntry('AFTER   TXT')];
  assert.deepEqual(names(dir), ['AFTER.TXT']);
  assert.deepEqual(names(dir2), ['AFTER.TXT']);
  const scan = scanDirectory(Buffer.concat(dir), dir.length, false);
  assert.equal(scan.subdirs, 2);
});

test('slots out of sequence restart; a non-slot entry ends the attempt and is read itself', () => {
  const [s2, s1] = lfnSlots(utf16Units('abcdefghijklmnopq'), 'ABCDEF~1   ');
  assert.ok(s1 && s2);
  // Slot 1 alone (no 0x40 flag) is invalid and skipped; the entry after it gets its short name.
  assert.deepEqual(names([s1, shortEntry('ABCDEF~1   ')]), ['ABCDEF~1']);
  // Slot 2 followed by a short entry: not a long name, the short entry is read afresh.
  assert.deepEqual(names([s2, shortEntry('ABCDEF~1   ')]), ['ABCDEF~1']);
  assert.deepEqual(names([s2, s1, shortEntry('ABCDEF~1   ')]), ['abcdefghijklmnopq']);
});

test('short names follow shortname=mixed: lower-case flags per base and extension, cp437', () => {
  assert.equal(shortNameUtf8(Buffer.from('README  TXT', 'latin1'), 0).toString(), 'README.TXT');
  assert.equal(shortNameUtf8(Buffer.from('README  TXT', 'latin1'), CASE_LOWER_BASE).toString(), 'readme.TXT');
  assert.equal(shortNameUtf8(Buffer.from('README  TXT', 'latin1'), CASE_LOWER_EXT).toString(), 'README.txt');
  assert.equal(shortNameUtf8(Buffer.from('README  TXT', 'latin1'), CASE_LOWER_BASE | CASE_LOWER_EXT).toString(), 'readme.txt');
  assert.equal(shortNameUtf8(Buffer.from('NOEXT      ', 'latin1'), 0).toString(), 'NOEXT');
  assert.equal(shortNameUtf8(Buffer.from('A B     C  ', 'latin1'), 0).toString(), 'A B.C');
  // 0x90 is É in cp437; the base flag lowers it to é (nls_cp437's charset2lower).
  assert.equal(shortNameUtf8(Buffer.from([0x90, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x54, 0x58, 0x54]), CASE_LOWER_BASE | CASE_LOWER_EXT).toString(), 'é.txt');
  // A leading 0x05 stands for 0xe5 (σ in cp437).
  assert.equal(shortNameUtf8(Buffer.from('\x05BC       ', 'latin1'), 0).toString(), 'σBC');
  assert.equal(shortNameUtf8(Buffer.from('           ', 'latin1'), 0).length, 0);
});

test('lookup: exact first, then ASCII case-insensitively on the long or 8.3 name, trailing dots ignored', () => {
  const dir = [...lfnSlots(utf16Units('Mixed.Txt'), 'MIXED   TXT'), shortEntry('MIXED   TXT'), shortEntry('ÉTÉ     TXT')];
  const recs = scanDirectory(Buffer.concat(dir), dir.length, false).records;
  assert.equal(lookupRecord(recs, Buffer.from('Mixed.Txt'))?.slot, 1);
  assert.equal(lookupRecord(recs, Buffer.from('MIXED.TXT'))?.slot, 1);
  assert.equal(lookupRecord(recs, Buffer.from('mixed.txt..'))?.slot, 1);
  assert.equal(lookupRecord(recs, Buffer.from('Mixed.Tx')), undefined);
  assert.equal(lookupRecord(recs, Buffer.from('.')), undefined);
});
