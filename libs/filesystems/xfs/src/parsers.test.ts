/**
 * The pure parsers on hand-built bytes: extent records, shortform and
 * data-block directories, shortform attributes, ACLs, device numbers,
 * timestamps, CRCs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '@strata/filesystem';
import { parseShortformAttrs } from './attr-shortform';
import { crcMatches, xfsCrc } from './checksum';
import { parseDataBlock } from './directory-block';
import { parseShortformDir } from './directory-shortform';
import { decodeExtent, findExtent } from './extent';
import { locateInode } from './geometry';
import { parseInode, rdevOf } from './inode';
import { aclFromDisk } from './posix-acl';
import type { Superblock } from './superblock';

function sb(overrides: Partial<Superblock> = {}): Superblock {
  return {
    blockSize: 4096, blockLog: 12, dblocks: 4 * 16384, rblocks: 0, uuid: Buffer.alloc(16, 7), metaUuid: Buffer.alloc(16, 7),
    logStart: 8192, rootIno: 128, agBlocks: 16384, agCount: 4, logBlocks: 1000, versionNum: 0xb4a5, sectSize: 512,
    inodeSize: 512, inodesPerBlock: 8, label: '', inodeLog: 9, inopbLog: 3, agBlkLog: 14, imaxPct: 25, icount: 64, inoAlignMt: 8,
    ifree: 60, fdblocks: 1000, dirBlkLog: 0, features2: 0, incompat: 0x9, roCompat: 0, logIncompat: 0, crc: true,
    ftype: true, hasNlink: true, ...overrides,
  };
}

function extentRecord(unwritten: boolean, offset: bigint, fsb: bigint, count: bigint): Buffer {
  const hi = ((unwritten ? 1n : 0n) << 63n) | (offset << 9n) | (fsb >> 43n);
  const lo = ((fsb & ((1n << 43n) - 1n)) << 21n) | count;
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(hi, 0);
  b.writeBigUInt64BE(lo, 8);
  return b;
}

test('extent records: the 1/54/52/21-bit packing, AG-encoded block numbers, the unwritten flag', () => {
  const s = sb();
  // fsblock of AG 2 block 100: 2 << agblklog | 100.
  const e = decodeExtent(s, extentRecord(true, 123456789n, (2n << 14n) | 100n, 2000n), 0, 'x');
  assert.deepEqual(e, { offset: 123456789, block: 2 * 16384 + 100, count: 2000, unwritten: true });
  const wide = sb({ agBlocks: 2 ** 22, agBlkLog: 22, dblocks: 4 * 2 ** 22 });
  const big = decodeExtent(wide, extentRecord(false, (1n << 54n) - 1n, 5n, (1n << 21n) - 1n), 0, 'x');
  assert.equal(big.offset, 2 ** 54 - 1);
  assert.equal(big.count, 2 ** 21 - 1);
  assert.equal(big.unwritten, false);
  // Past the AG's end, or of length 0: damage.
  assert.throws(() => decodeExtent(s, extentRecord(false, 0n, (1n << 14n) - 1n, 2n), 0, 'x'), /leaves its allocation group/);
  assert.throws(() => decodeExtent(s, extentRecord(false, 0n, 4n << 14n, 1n), 0, 'x'), /outside the filesystem/);
  assert.throws(() => decodeExtent(s, extentRecord(false, 0n, 1n, 0n), 0, 'x'), /empty extent/);
  const list = [{ offset: 0, count: 2 }, { offset: 10, count: 1 }, { offset: 20, count: 5 }].map((x) => ({ ...x, block: 1, unwritten: false }));
  assert.deepEqual([0, 1, 2, 9, 10, 19, 24, 1000].map((fb) => findExtent(list, fb)), [0, 0, 0, 0, 1, 1, 2, 2]);
});

test('inode numbers: AG, block and slot from agblklog and inopblog; headers and the end refused', () => {
  const s = sb();
  assert.deepEqual(locateInode(s, 128), { agno: 0, agbno: 16, slot: 0, offset: 16 * 4096 });
  const ino = (3 * 2 ** 17) + (5000 << 3) + 5;
  assert.deepEqual(locateInode(s, ino), { agno: 3, agbno: 5000, slot: 5, offset: (3 * 16384 + 5000) * 4096 + 5 * 512 });
  assert.equal(locateInode(s, 1), undefined);
  assert.equal(locateInode(s, 4 * 2 ** 17), undefined);
  assert.equal(locateInode(s, 2 ** 53 + 2), undefined);
});

test('CRCs: CRC-32C over the structure with its own field as zeros, stored inverted little-endian', () => {
  const buf = Buffer.from('0123456789abcdef0123456789abcdef');
  const expected = ~crc32c(0xffffffff, Buffer.concat([buf.subarray(0, 8), Buffer.alloc(4), buf.subarray(12)])) >>> 0;
  assert.equal(xfsCrc(buf, 0, buf.length, 8), expected);
  buf.writeUInt32LE(expected, 8);
  assert.ok(crcMatches(buf, 0, buf.length, 8));
  buf[20] ^= 1;
  assert.ok(!crcMatches(buf, 0, buf.length, 8));
});

function v3Inode(s: Superblock, ino: number, fill: (b: Buffer) => void): Buffer {
  const b = Buffer.alloc(s.inodeSize);
  b.writeUInt16BE(0x494e, 0);
  b[4] = 3;
  b[5] = 2; // extents
  b[83] = 2;
  b.writeBigUInt64BE(BigInt(ino), 152);
  s.metaUuid.copy(b, 160);
  fill(b);
  b.writeUInt32LE(xfsCrc(b, 0, s.inodeSize, 100), 100);
  return b;
}

test('inode cores: legacy and bigtime timestamps, negative times, nrext64 counters, CRC', () => {
  const s = sb({ incompat: 0x9 | 0x20 });
  const raw = v3Inode(s, 131, (b) => {
    b.writeUInt16BE(0o100644, 2);
    b.writeUInt32BE(1, 16);
    b.writeInt32BE(-2_000_000_000, 32); // atime 1906-08-16, legacy
    b.writeInt32BE(123456789, 36);
  });
  const i = parseInode(s, 131, raw)!;
  assert.equal(i.atimeNs, -2_000_000_000n * 1_000_000_000n + 123456789n);
  assert.equal(i.nlink, 1);
  const big = v3Inode(s, 132, (b) => {
    b.writeUInt16BE(0o100644, 2);
    b.writeBigUInt64BE(0x8n | 0x10n, 120); // bigtime, nrext64
    b.writeBigUInt64BE((7258118400n + 2n ** 31n) * 1_000_000_000n + 5n, 40); // mtime 2200-01-01 + 5 ns
    b[5] = 3; // btree
    b.writeBigUInt64BE(70000n, 24); // data extents, 64-bit
    b.writeUInt32BE(3, 76); // attr extents, 32-bit
    b.writeBigUInt64BE(80000n, 64);
    b[82] = 20;
  });
  const j = parseInode(s, 132, big)!;
  assert.equal(j.mtimeNs, 7258118400n * 1_000_000_000n + 5n);
  assert.equal(j.nextents, 70000);
  assert.equal(j.anextents, 3);
  // Damage anywhere: the CRC no longer matches; a free inode reads as undefined.
  big[300] ^= 1;
  assert.throws(() => parseInode(s, 132, big), /bad CRC/);
  assert.equal(parseInode(s, 133, v3Inode(s, 133, () => undefined)), undefined);
  assert.throws(() => parseInode(s, 134, raw), /another inode number/);
});

test('device numbers: sysv 14:18 on disk, glibc dev_t out', () => {
  assert.equal(rdevOf((1 << 18) | 3), 0x103);
  // major 259, minor 65537: glibc puts minor's low byte at 0, major at 8..19, minor's upper bits from 20.
  assert.equal(rdevOf(259 * 2 ** 18 + 65537), 0x01 + 0x103 * 0x100 + 0x100 * 0x100000);
});

test('shortform directories: 4- and 8-byte inode numbers, ftype, exact size', () => {
  const entries = [
    { name: 'a', ino: 131, type: 1 },
    { name: 'subdir', ino: 5_000_000_000, type: 2 },
  ];
  const parts = [Buffer.from([2, 1]), Buffer.alloc(8)];
  for (const e of entries) {
    const ino = Buffer.alloc(8);
    ino.writeBigUInt64BE(BigInt(e.ino));
    parts.push(Buffer.from([e.name.length, 0, 0x30]), Buffer.from(e.name), Buffer.from([e.type]), ino);
  }
  const fork = Buffer.concat(parts);
  const { entries: list, parent } = parseShortformDir(fork, fork.length, true, 'd');
  assert.equal(parent, 0);
  assert.deepEqual(list.map((e) => [e.name.toString(), e.ino, e.type]), [['a', 131, 'file'], ['subdir', 5_000_000_000, 'dir']]);
  assert.throws(() => parseShortformDir(fork, fork.length - 1, true, 'd'), /truncated/);
});

function dataEntry(ino: number, name: string, ftype: number, at: number): Buffer {
  const size = (8 + 1 + name.length + 1 + 2 + 7) & ~7;
  const b = Buffer.alloc(size);
  b.writeBigUInt64BE(BigInt(ino), 0);
  b[8] = name.length;
  b.write(name, 9, 'latin1');
  b[9 + name.length] = ftype;
  b.writeUInt16BE(at, size - 2);
  return b;
}

test('directory data blocks: entries, free space, the block-form tail, CRC and owner', () => {
  const s = sb();
  const blk = Buffer.alloc(4096);
  blk.writeUInt32BE(0x58444233, 0); // XDB3: block form
  blk.writeBigUInt64BE(800n, 8);
  s.metaUuid.copy(blk, 24);
  blk.writeBigUInt64BE(131n, 40);
  let pos = 64;
  for (const [ino, name, ft] of [[131, '.', 2], [128, '..', 2], [140, 'file', 1], [141, 'link', 7]] as const) {
    const e = dataEntry(ino, name, ft, pos);
    e.copy(blk, pos);
    pos += e.length;
  }
  const tailAt = 4096 - 8 - 4 * 8;
  blk.writeUInt16BE(0xffff, pos);
  blk.writeUInt16BE(tailAt - pos, pos + 2);
  blk.writeUInt16BE(pos, tailAt - 2);
  blk.writeUInt32BE(4, 4096 - 8);
  blk.writeUInt32LE(xfsCrc(blk, 0, 4096, 4), 4);
  const list = parseDataBlock(s, blk, 800, 131, 'b');
  assert.deepEqual(list.map((e) => [e.name.toString(), e.ino, e.type]), [['.', 131, 'dir'], ['..', 128, 'dir'], ['file', 140, 'file'], ['link', 141, 'symlink']]);
  assert.throws(() => parseDataBlock(s, blk, 800, 132, 'b'), /wrong owner/);
  assert.throws(() => parseDataBlock(s, blk, 808, 131, 'b'), /wrong block number/);
  blk[100] ^= 0x40;
  assert.throws(() => parseDataBlock(s, blk, 800, 131, 'b'), /bad CRC/);
});

test('shortform attributes and XFS ACLs in getxattr form', () => {
  const fork = Buffer.concat([Buffer.from([0, 0, 2, 0]), Buffer.from([2, 2, 0]), Buffer.from('ab'), Buffer.from('xy'), Buffer.from([12, 0, 2]), Buffer.from('SGI_ACL_FILE')]);
  fork.writeUInt16BE(fork.length, 0);
  const attrs = parseShortformAttrs(Buffer.concat([fork, Buffer.alloc(8)]), 'a');
  assert.deepEqual(attrs.map((a) => [a.flags, a.name.toString(), a.value?.toString()]), [[0, 'ab', 'xy'], [2, 'SGI_ACL_FILE', '']]);
  const entries: [number, number, number][] = [[1, 0xffffffff, 6], [2, 1000, 7], [4, 0, 4], [16, 0, 7], [32, 0, 0]];
  const disk = Buffer.alloc(4 + entries.length * 12);
  disk.writeUInt32BE(entries.length, 0);
  entries.forEach(([tag, id, perm], i) => {
    disk.writeUInt32BE(tag, 4 + i * 12);
    disk.writeUInt32BE(id, 8 + i * 12);
    disk.writeUInt16BE(perm, 12 + i * 12);
  });
  const vfs = aclFromDisk(disk, true, 'acl');
  assert.equal(vfs.toString('hex'), '02000000' + '01000600ffffffff' + '02000700e8030000' + '04000400ffffffff' + '10000700ffffffff' + '20000000ffffffff');
  assert.throws(() => aclFromDisk(disk.subarray(0, disk.length - 1), true, 'acl'), /ACL of 5 entries/);
  disk.writeUInt32BE(0x40, 4);
  assert.throws(() => aclFromDisk(disk, true, 'acl'), /unknown tag/);
});
