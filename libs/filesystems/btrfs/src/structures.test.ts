import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStrataError } from '@strata/errors';
import { ChunkMap, parseChunk, parseSysChunkArray } from './chunk-map';
import { parseDirItems } from './dir-item';
import { parseInodeExtrefs, parseInodeRefs } from './inode-ref';
import { parseFileExtent } from './file-extent';
import { HEADER_SIZE, TreeBlock } from './tree-block';
import { compareKeys, key } from './key';
import { OverlayTree } from './overlay-tree';
import type { BTree, Item } from './btree';

const euclean = (e: unknown): boolean => isStrataError(e) && e.errno === 117;
const FSID = Buffer.alloc(16, 7);

/** A leaf of `size` bytes holding `items` (keys ascending), laid out as the kernel lays it out. */
function leaf(bytenr: bigint, items: [ReturnType<typeof key>, Buffer][], size = 4096): Buffer {
  const b = Buffer.alloc(size);
  FSID.copy(b, 32);
  b.writeBigUInt64LE(bytenr, 48);
  b.writeUInt32LE(items.length, 96);
  b[100] = 0;
  let end = size - HEADER_SIZE;
  items.forEach(([k, data], i) => {
    const at = HEADER_SIZE + i * 25;
    b.writeBigUInt64LE(k.objectid, at);
    b[at + 8] = k.type;
    b.writeBigUInt64LE(k.offset, at + 9);
    end -= data.length;
    b.writeUInt32LE(end, at + 17);
    b.writeUInt32LE(data.length, at + 21);
    data.copy(b, HEADER_SIZE + end);
  });
  return b;
}

test('tree block: a well-formed leaf parses; misordered keys, misplaced data, wrong fsid or bytenr are EUCLEAN', () => {
  const items: [ReturnType<typeof key>, Buffer][] = [
    [key(256n, 1, 0n), Buffer.alloc(160, 1)],
    [key(256n, 12, 256n), Buffer.from('abc')],
  ];
  const good = leaf(4096n, items);
  const block = TreeBlock.parse(good, 4096n, FSID);
  assert.equal(block.count, 2);
  assert.deepEqual(block.itemData(1), Buffer.from('abc'));
  assert.throws(() => TreeBlock.parse(leaf(4096n, [items[1], items[0]]), 4096n, FSID), euclean);
  assert.throws(() => TreeBlock.parse(good, 8192n, FSID), euclean);
  assert.throws(() => TreeBlock.parse(good, 4096n, Buffer.alloc(16)), euclean);
  const misplaced = Buffer.from(good);
  misplaced.writeUInt32LE(misplaced.readUInt32LE(HEADER_SIZE + 17) - 1, HEADER_SIZE + 17);
  assert.throws(() => TreeBlock.parse(misplaced, 4096n, FSID), euclean);
  const tooMany = Buffer.from(good);
  tooMany.writeUInt32LE(1000, 96);
  assert.throws(() => TreeBlock.parse(tooMany, 4096n, FSID), euclean);
});

function chunkItem(length: bigint, type: bigint, stripes: [bigint, bigint][]): Buffer {
  const b = Buffer.alloc(48 + 32 * stripes.length);
  b.writeBigUInt64LE(length, 0);
  b.writeBigUInt64LE(type, 24);
  b.writeUInt16LE(stripes.length, 44);
  stripes.forEach(([dev, off], i) => {
    b.writeBigUInt64LE(dev, 48 + i * 32);
    b.writeBigUInt64LE(off, 56 + i * 32);
  });
  return b;
}

test('chunks: SINGLE and DUP map to their copies; RAID profiles and other devices are refused; overlaps are EUCLEAN', () => {
  const map = new ChunkMap();
  map.add(parseChunk(chunkItem(1n << 20n, 4n | 32n, [[1n, 10n << 20n], [1n, 20n << 20n]]), 0, 112, 30n << 20n, 1n));
  map.add(parseChunk(chunkItem(1n << 20n, 1n, [[1n, 40n << 20n]]), 0, 80, 50n << 20n, 1n));
  assert.deepEqual(map.map((30 << 20) + 100, 50), { copies: [(10 << 20) + 100, (20 << 20) + 100], length: 50 });
  assert.deepEqual(map.map((51 << 20) - 10, 50), { copies: [(41 << 20) - 10], length: 10 });
  assert.throws(() => map.find(40 << 20), euclean);
  assert.throws(() => map.add(parseChunk(chunkItem(4n << 20n, 1n, [[1n, 0n]]), 0, 80, 29n << 20n, 1n)), euclean);
  assert.throws(() => parseChunk(chunkItem(1n << 20n, 1n | 16n, [[1n, 0n], [2n, 0n]]), 0, 112, 0n, 1n), (e: unknown) => isStrataError(e) && e.errno === 95 && /RAID1/.test(e.message));
  assert.throws(() => parseChunk(chunkItem(1n << 20n, 1n, [[2n, 0n]]), 0, 80, 0n, 1n), (e: unknown) => isStrataError(e) && e.errno === 95);
  assert.throws(() => parseChunk(chunkItem(1n << 20n, 1n, [[1n, 0n]]), 0, 60, 0n, 1n), euclean);
  const sys = Buffer.concat([Buffer.alloc(17), chunkItem(4n << 20n, 2n, [[1n, 1n << 20n]])]);
  sys.writeBigUInt64LE(256n, 0);
  sys[8] = 228;
  sys.writeBigUInt64LE(1n << 20n, 9);
  assert.equal(parseSysChunkArray(sys, 1n)[0].logical, 1 << 20);
  assert.throws(() => parseSysChunkArray(sys.subarray(0, 40), 1n), euclean);
});

test('packed items: dir entries, inode refs and extrefs, file extents; truncation is EUCLEAN', () => {
  const entry = (name: string, data = ''): Buffer => {
    const b = Buffer.alloc(30 + name.length + data.length);
    b.writeBigUInt64LE(300n, 0);
    b[8] = 1;
    b.writeUInt16LE(data.length, 25);
    b.writeUInt16LE(name.length, 27);
    b[29] = 1;
    b.write(name + data, 30, 'latin1');
    return b;
  };
  const two = Buffer.concat([entry('a'), entry('user.x', 'value')]);
  const parsed = parseDirItems(two, 'test');
  assert.deepEqual(parsed.map((d) => [d.name.toString(), d.data.toString(), d.location.objectid]), [['a', '', 300n], ['user.x', 'value', 300n]]);
  assert.throws(() => parseDirItems(two.subarray(0, two.length - 1), 'test'), euclean);
  const ref = Buffer.from([2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0x61, 0x62, 0x63]);
  assert.deepEqual(parseInodeRefs(ref, 256n).map((r) => [r.parent, r.index, r.name.toString()]), [[256n, 2n, 'abc']]);
  assert.throws(() => parseInodeRefs(ref.subarray(0, 12), 256n), euclean);
  const ext = Buffer.concat([Buffer.alloc(16), Buffer.from([1, 0, 0x7a])]);
  ext.writeBigUInt64LE(257n, 0);
  assert.deepEqual(parseInodeExtrefs(ext).map((r) => [r.parent, r.name.toString()]), [[257n, 'z']]);
  const reg = Buffer.alloc(53);
  reg[20] = 1;
  reg.writeBigUInt64LE(1n << 30n, 21);
  reg.writeBigUInt64LE(4096n, 45);
  assert.equal(parseFileExtent(reg).numBytes, 4096n);
  assert.throws(() => parseFileExtent(reg.subarray(0, 40)), euclean);
  const badType = Buffer.from(reg);
  badType[20] = 9;
  assert.throws(() => parseFileExtent(badType), euclean);
});

test('overlay: puts and deletes hide the base in range, get and lastAtOrBefore', async () => {
  const baseItems: Item[] = [1n, 3n, 5n, 7n].map((o) => ({ key: key(256n, 108, o), data: Buffer.from(`base${o}`) }));
  const base = {
    async *range(from: ReturnType<typeof key>, to: ReturnType<typeof key>) {
      for (const it of baseItems) if (compareKeys(it.key, from) >= 0 && compareKeys(it.key, to) <= 0) yield it;
    },
    async get(k: ReturnType<typeof key>) {
      return baseItems.find((it) => compareKeys(it.key, k) === 0);
    },
    async lastAtOrBefore(t: ReturnType<typeof key>, f: ReturnType<typeof key>) {
      return baseItems.filter((it) => compareKeys(it.key, t) <= 0 && compareKeys(it.key, f) >= 0).pop();
    },
  } as unknown as BTree;
  const o = new OverlayTree(base);
  o.delete(key(256n, 108, 3n));
  o.put(key(256n, 108, 4n), Buffer.from('new4'));
  o.put(key(256n, 108, 7n), Buffer.from('new7'));
  o.put(key(256n, 108, 9n), Buffer.from('new9'));
  const all: string[] = [];
  for await (const it of o.range(key(256n, 108, 0n), key(256n, 108, 100n))) all.push(it.data.toString());
  assert.deepEqual(all, ['base1', 'new4', 'base5', 'new7', 'new9']);
  const some: string[] = [];
  for await (const it of o.range(key(256n, 108, 2n), key(256n, 108, 6n))) some.push(it.data.toString());
  assert.deepEqual(some, ['new4', 'base5']);
  assert.equal(await o.get(key(256n, 108, 3n)), undefined);
  assert.equal((await o.get(key(256n, 108, 5n)))?.data.toString(), 'base5');
  const floor = key(256n, 108, 0n);
  assert.equal((await o.lastAtOrBefore(key(256n, 108, 3n), floor))?.data.toString(), 'base1');
  assert.equal((await o.lastAtOrBefore(key(256n, 108, 4n), floor))?.data.toString(), 'new4');
  assert.equal((await o.lastAtOrBefore(key(256n, 108, 8n), floor))?.data.toString(), 'new7');
  assert.equal((await o.lastAtOrBefore(key(256n, 108, 50n), floor))?.data.toString(), 'new9');
  assert.equal(await o.lastAtOrBefore(key(256n, 108, 0n), floor), undefined);
});
