/** Boot sector, update sequence fixups, attribute records, runlists and index entries, on records built here. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Errno, isStrataError } from '@strata/errors';
import { parseAttribute } from './attribute';
import { parseBootSector } from './boot-sector';
import { parseIndexEntries } from './directory-index';
import { applyFixups } from './fixup';
import { parseMftRecord } from './mft-record';
import { HOLE, decodeRunlist, findRun } from './runlist';
import { ntfsTimeToNs } from './standard-information';
import { Upcase } from './upcase';
import { fileName, indexEntry, indexNode, mftRecord, nonResidentAttr, protect, residentAttr } from './record-builder';
import { bytesToUtf16, utf16ToBytes } from './unicode';

const euclean = (e: unknown): boolean => isStrataError(e) && e.errno === Errno.EUCLEAN;

function bootSector(over: (b: Buffer) => void = () => undefined): Buffer {
  const b = Buffer.alloc(512);
  b.write('NTFS    ', 3, 'latin1');
  b.writeUInt16LE(512, 0x0b);
  b[0x0d] = 8;
  b.writeBigInt64LE(131071n, 0x28);
  b.writeBigInt64LE(4n, 0x30);
  b.writeBigInt64LE(8000n, 0x38);
  b[0x40] = 0xf6; // -10: 1024-byte records
  b[0x44] = 1; // one cluster per index record
  b.writeBigUInt64LE(0x658c0ee40dc9eb64n, 0x48);
  b.writeUInt16LE(0xaa55, 0x1fe);
  over(b);
  return b;
}

test('boot sector: geometry, negative record size encodings, serial as blkid prints it', () => {
  const bs = parseBootSector(bootSector(), 64 << 20);
  assert.deepEqual(
    [bs.clusterSize, bs.clusters, bs.mftLcn, bs.mftRecordSize, bs.indexRecordSize, bs.serial],
    [4096, 16383, 4, 1024, 4096, '658C0EE40DC9EB64'],
  );
  assert.equal(parseBootSector(bootSector((b) => (b[0x40] = 0xf4)), 64 << 20).mftRecordSize, 4096);
  const huge = bootSector((b) => {
    b[0x0d] = 0xf4;
    b[0x44] = 0xf4;
    b.writeBigInt64LE(1n << 30n, 0x28);
  });
  assert.equal(parseBootSector(huge, 2 ** 39).clusterSize, 512 * 4096, 'sectors per cluster as a negative power of two');
  assert.throws(() => parseBootSector(bootSector((b) => b.write('FAT32   ', 3)), 64 << 20), (e: unknown) => isStrataError(e) && e.errno === Errno.EINVAL);
  for (const damage of [(b: Buffer) => b.writeUInt16LE(500, 0x0b), (b: Buffer) => (b[0x0d] = 3), (b: Buffer) => (b[0x40] = 0), (b: Buffer) => b.writeBigInt64LE(99999n, 0x30), (b: Buffer) => b.writeUInt16LE(0, 0x1fe)]) {
    assert.throws(() => parseBootSector(bootSector(damage), 64 << 20), euclean);
  }
  assert.throws(() => parseBootSector(bootSector(), 1 << 20), (e: unknown) => isStrataError(e) && e.errno === Errno.EIO, 'a volume larger than its device');
});

test('fixups restore the sector tails; a torn sector is EUCLEAN', () => {
  const body = Buffer.alloc(1024);
  body.writeUInt16LE(0xbeef, 510);
  body.writeUInt16LE(0xcafe, 1022);
  const fixed = applyFixups(protect(body), 'record');
  assert.equal(fixed.readUInt16LE(510), 0xbeef);
  assert.equal(fixed.readUInt16LE(1022), 0xcafe);
  const torn = protect(body);
  torn.writeUInt16LE(0x9999, 1022);
  assert.throws(() => applyFixups(torn, 'record'), (e: unknown) => euclean(e) && /torn/.test(String(e)));
  const badCount = protect(body);
  badCount.writeUInt16LE(7, 6);
  assert.throws(() => applyFixups(badCount, 'record'), euclean);
});

test('runlists: lengths, signed LCN deltas (negative too), sparse runs, coverage of the VCN range', () => {
  // 0x21: 1 length byte, 2 offset bytes; 0x01: a hole; 0x11 with a negative delta.
  const pairs = Buffer.from([0x21, 0x10, 0x00, 0x01, 0x01, 0x20, 0x11, 0x05, 0xf0, 0x31, 0x02, 0x00, 0x00, 0x01, 0x00]);
  const runs = decodeRunlist(pairs, 0, pairs.length, 0, 0x10 + 0x20 + 5 + 2 - 1, 1 << 20, 'runlist');
  assert.deepEqual(runs, [
    { vcn: 0, lcn: 0x100, length: 0x10 },
    { vcn: 0x10, lcn: HOLE, length: 0x20 },
    { vcn: 0x30, lcn: 0x100 - 0x10, length: 5 },
    { vcn: 0x35, lcn: 0x100 - 0x10 + 0x10000, length: 2 },
  ]);
  assert.equal(findRun(runs, 0x31), 2);
  assert.equal(findRun(runs, 0x37), -1);
  assert.throws(() => decodeRunlist(pairs, 0, pairs.length, 0, 100, 1 << 20, 'runlist'), euclean, 'VCN coverage must match');
  assert.throws(() => decodeRunlist(Buffer.from([0x11, 0x05, 0xf0, 0x00]), 0, 4, 0, 4, 1 << 20, 'runlist'), euclean, 'a negative LCN');
  assert.throws(() => decodeRunlist(Buffer.from([0x21, 0x05, 0x00, 0x10, 0x00]), 0, 5, 0, 4, 0x1002, 'runlist'), euclean, 'past the volume');
  assert.throws(() => decodeRunlist(Buffer.from([0x91, 0x05]), 0, 2, 0, 4, 1 << 20, 'runlist'), euclean, 'nine offset bytes');
  assert.throws(() => decodeRunlist(Buffer.from([0x21, 0x05]), 0, 2, 0, 4, 1 << 20, 'runlist'), euclean, 'truncated pair');
});

test('MFT records: resident and non-resident attributes, names, compressed size; damage stays in its attribute', () => {
  const si = Buffer.alloc(72);
  si.writeBigInt64LE(116444736000000000n + 15n, 8);
  const rec = mftRecord([
    residentAttr(0x10, si),
    residentAttr(0x80, Buffer.from('stream data'), 'Zone.Identifier'),
    nonResidentAttr(0x80, Buffer.from([0x11, 0x04, 0x20, 0x00]), { highestVcn: 3, allocatedSize: 16384, dataSize: 16000 }),
    nonResidentAttr(0x80, Buffer.from([0x11, 0x01, 0x30, 0x01, 0x0f, 0x00]), { highestVcn: 15, allocatedSize: 65536, dataSize: 60000, flags: 0x0001, compressionUnit: 4, compressedSize: 4096 }),
  ]);
  const parsed = parseMftRecord(rec, 42, 1 << 20);
  assert.equal(parsed.attributes.length, 4);
  assert.equal(parsed.attributes[1].name.toString('utf16le'), 'Zone.Identifier');
  assert.equal(parsed.attributes[1].value?.toString(), 'stream data');
  assert.deepEqual(parsed.attributes[2].nonResident?.runs, [{ vcn: 0, lcn: 0x20, length: 4 }]);
  assert.equal(parsed.attributes[3].nonResident?.compressedSize, 4096);
  assert.deepEqual(parsed.attributes[3].nonResident?.runs.map((r) => r.lcn), [0x30, HOLE]);
  const badRuns = mftRecord([residentAttr(0x10, si), nonResidentAttr(0x80, Buffer.from([0x11, 0x04, 0x20, 0x00]), { highestVcn: 9, allocatedSize: 40960, dataSize: 1 })]);
  const p2 = parseMftRecord(badRuns, 43, 1 << 20);
  assert.ok(p2.attributes[1].nonResident?.runsError, 'a bad runlist is kept as that attribute\'s error');
  assert.equal(ntfsTimeToNs(si.readBigInt64LE(8)), 1500n);
  assert.equal(ntfsTimeToNs(116444736000000000n - 5_000_000n), -1_000_000_000n * 0n, 'half a second before 1970: seconds truncate to 0 and the negative remainder is dropped');
  assert.equal(ntfsTimeToNs(116444736000000000n - 15_000_000n), -1_000_000_000n);
  const overlong = Buffer.from(residentAttr(0x10, si));
  overlong.writeUInt32LE(4000, 4);
  assert.throws(() => parseMftRecord(mftRecord([overlong]), 44, 1 << 20), euclean);
  const wrongMagic = mftRecord([residentAttr(0x10, si)]);
  wrongMagic.write('BAAD', 0);
  assert.throws(() => parseMftRecord(wrongMagic, 45, 1 << 20), (e: unknown) => euclean(e) && /BAAD/.test(String(e)));
  assert.throws(() => parseAttribute(Buffer.alloc(64), 0, 64, 1, 'x'), euclean);
});

test('index entries: keys, node pointers, END; collation as ntfs-3g compares names', () => {
  const node = indexNode([indexEntry(64, fileName(5, 'alpha')), indexEntry(65, fileName(5, 'Beta'), 3), indexEntry(0, undefined, 7)]);
  const parsed = parseIndexEntries(node, 0, node.length, 'index');
  assert.deepEqual(parsed.map((e) => [e.record, e.key?.name.toString('utf16le'), e.child]), [[64, 'alpha', undefined], [65, 'Beta', 3], [0, undefined, 7]]);
  const cut = Buffer.from(node);
  cut.writeUInt32LE(40, 4); // the index ends inside the second entry
  assert.throws(() => parseIndexEntries(cut, 0, cut.length, 'index'), euclean);
  const up = Upcase.ascii();
  const u = (s: string): Buffer => Buffer.from(s, 'utf16le');
  assert.equal(up.collate(u('abc'), u('ABD'), false), -1);
  assert.equal(up.collate(u('File'), u('file'), true), 0);
  assert.equal(up.collate(u('File'), u('file'), false), -1, 'case-sensitive ties break on the stored units');
  assert.equal(up.collate(u('ab'), u('ABC'), false), -1);
});

test('names render as ntfs-3g renders them: UTF-8, lone surrogates as three bytes, NUL ends the name', () => {
  const units = (...u: number[]): Buffer => {
    const b = Buffer.alloc(u.length * 2);
    u.forEach((x, i) => b.writeUInt16LE(x, 2 * i));
    return b;
  };
  assert.equal(utf16ToBytes(Buffer.from('Ünïcode 😀', 'utf16le')).toString(), 'Ünïcode 😀');
  assert.deepEqual([...utf16ToBytes(units(0x61, 0xd800, 0x62))], [0x61, 0xed, 0xa0, 0x80, 0x62]);
  assert.deepEqual([...utf16ToBytes(units(0xdc00))], [0xed, 0xb0, 0x80]);
  assert.deepEqual([...utf16ToBytes(units(0x61, 0, 0x62))], [0x61]);
  assert.deepEqual(bytesToUtf16(utf16ToBytes(units(0x61, 0xd800, 0x62))), units(0x61, 0xd800, 0x62));
  assert.equal(bytesToUtf16(Buffer.from([0xff])), undefined);
  assert.equal(bytesToUtf16(Buffer.from([0xc0, 0x80])), undefined);
});
