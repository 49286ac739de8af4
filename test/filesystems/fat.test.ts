/**
 * The FAT reader against mtools: images made by mkfs.fat (FAT12, FAT16,
 * FAT32; clusters of 512 B to 32 KiB) and filled by mtools from a tree this
 * test writes, then every path compared with what `mcopy -s -m` copies out
 * (names, types, sizes, contents, modification times) and `mattrib -/`
 * reports (attributes), and the stat fields checked against the mapping
 * the kernel's vfat driver makes with default options (README "The mapping").
 * The kernel here has no vfat module, so mtools is the reference for the tree.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { ByteSource } from '@strata/filesystem';
import { Fat, fatDriver } from '@strata/fat';
import {
  copyIn,
  makeFatImage,
  makeTempDir,
  mtools,
  mtoolsAttributes,
  mtoolsFreeBytes,
  mtoolsSkipReason,
  mtoolsTree,
  patternBytes,
  type ImageSpec,
} from '@strata/fat/dist/fixture-image';

const skip = mtoolsSkipReason();

interface Variant {
  name: string;
  spec: ImageSpec;
}

const VARIANTS: Variant[] = [
  { name: 'FAT12, 512 B clusters', spec: { fatBits: 12, sizeMiB: 2, sectorsPerCluster: 1, label: 'SMALL12', serial: '1a2b3c4d' } },
  { name: 'FAT12, 32 KiB clusters', spec: { fatBits: 12, sizeMiB: 40, sectorsPerCluster: 64, label: 'BIG CLUS', serial: '00000001' } },
  { name: 'FAT16, 2 KiB clusters', spec: { fatBits: 16, sizeMiB: 24, sectorsPerCluster: 4, label: 'SIXTEEN', serial: 'deadbeef' } },
  { name: 'FAT32, 1 KiB clusters', spec: { fatBits: 32, sizeMiB: 80, sectorsPerCluster: 2, serial: 'cafe0032' } },
];

const T2001 = new Date('2001-02-03T04:05:06Z');
const T2020 = new Date('2020-06-15T12:00:01Z');

/** Writes the host tree the image is filled from; sizes follow the cluster size. */
async function writeHostTree(root: string, cs: number, manyFiles: number): Promise<void> {
  const file = async (rel: string, size: number, seed: number, mtime = T2001): Promise<void> => {
    const p = path.join(root, rel);
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await fsp.writeFile(p, patternBytes(size, seed));
    await fsp.utimes(p, mtime, mtime);
  };
  let seed = 1;
  for (const size of [0, 1, cs - 1, cs, cs + 1, 3 * cs + 7, 70_000]) await file(`sizes/size-${size}.bin`, size, seed++);
  await file('a long file name with spaces and.dots.txt', 100, seed++, T2020);
  await file('Mixed Case Name.TXT', 10, seed++);
  await file('café au lait é.txt', 11, seed++);
  await file('日本語のファイル.txt', 12, seed++);
  await file('Ünïcödé ñ-Ω.md', 13, seed++);
  // Names mtools stores as 8.3 entries with the lower-case flags (no long name).
  await file('readme.txt', 14, seed++);
  await file('lower.TXT', 15, seed++);
  await file('UP.txt', 16, seed++);
  await file('UPPER.TXT', 17, seed++);
  await file('noext', 18, seed++);
  await fsp.mkdir(path.join(root, 'lowerdir'));
  await fsp.mkdir(path.join(root, 'empty dir'));
  let deep = 'deep';
  for (let i = 1; i <= 12; i++) deep = `${deep}/level ${i}`;
  await file(`${deep}/leaf.txt`, 19, seed++);
  for (let i = 0; i < manyFiles; i++) await file(`many/file number ${String(i).padStart(3, '0')} with a long name.txt`, 20 + (i % 50), seed++);
  await file('attrs/readonly.txt', 21, seed++);
  await file('attrs/hidden.txt', 22, seed++);
  await file('attrs/system.txt', 23, seed++);
  await file('attrs/ro dir/inside.txt', 24, seed);
}

/** FAT32: sets FSInfo's next-free hint to "unknown" so that mtools allocates from the start again, into the holes. */
async function forgetNextFree(image: string): Promise<void> {
  const fh = await fsp.open(image, 'r+');
  try {
    const boot = Buffer.alloc(512);
    await fh.read(boot, 0, 512, 0);
    if (boot.readUInt16LE(22) !== 0) return;
    const fsinfo = boot.readUInt16LE(48) * boot.readUInt16LE(11);
    await fh.write(Buffer.from([0xff, 0xff, 0xff, 0xff]), 0, 4, fsinfo + 492);
  } finally {
    await fh.close();
  }
}

/** Copies in alternating files, deletes every other one, then a file that must reuse the holes. */
async function fragment(image: string, work: string, cs: number): Promise<void> {
  const dir = await fsp.mkdtemp(path.join(work, 'frag-'));
  for (let i = 0; i < 8; i++) await fsp.writeFile(path.join(dir, `frag-${i}.bin`), patternBytes(2 * cs, 1000 + i));
  mtools('mmd', image, '::/frag');
  await copyIn(image, dir, '::/frag');
  for (let i = 0; i < 8; i += 2) mtools('mdel', image, `::/frag/frag-${i}.bin`);
  await forgetNextFree(image);
  const big = await fsp.mkdtemp(path.join(work, 'frag-big-'));
  await fsp.writeFile(path.join(big, 'fragmented.bin'), patternBytes(9 * cs + 5, 2000));
  await copyIn(image, big, '::/frag');
}

function fileSource(data: Buffer): ByteSource {
  return { size: data.length, read: async (o, l) => data.subarray(o, o + l) };
}

interface Seen {
  handle: number;
  mode: number;
  size: number;
  nlink: number;
  blocks: number;
  blksize: number;
  uid: number;
  gid: number;
  ino: number;
  mtimeNs: bigint;
  atimeNs: bigint;
  ctimeNs: bigint;
  sha256?: string;
  entries?: number;
}

async function readerTree(fs: Fat): Promise<Map<string, Seen>> {
  const tree = new Map<string, Seen>();
  const visit = async (rel: string, handle: number): Promise<void> => {
    const n = await fs.node(handle);
    const seen: Seen = { ...n };
    if ((n.mode & 0o170000) === 0o100000) {
      const h = createHash('sha256');
      for (let off = 0; off < n.size; off += 65536) h.update(await fs.read(handle, off, 65536));
      seen.sha256 = h.digest('hex');
    }
    tree.set(rel, seen);
    if ((n.mode & 0o170000) !== 0o040000) return;
    const entries = await fs.readdir(handle);
    seen.entries = entries.length;
    for (const e of entries) {
      const name = e.name.toString('utf8');
      assert.equal(await fs.lookup(handle, e.name), e.handle, `lookup ${rel}/${name}`);
      assert.equal(e.type, (await fs.node(e.handle)).mode & 0o040000 ? 'dir' : 'file');
      await visit(`${rel}/${name}`, e.handle);
    }
  };
  await visit('', fs.rootHandle);
  return tree;
}

describe('FAT reader against mtools', { skip }, () => {
  let work: string;
  before(async () => {
    work = await makeTempDir('fat-test-');
  });
  after(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  for (const v of VARIANTS) {
    test(v.name, async () => {
      const cs = 512 * v.spec.sectorsPerCluster;
      const host = path.join(work, `${v.spec.fatBits}-${cs}-host`);
      await fsp.mkdir(host);
      await writeHostTree(host, cs, v.spec.sizeMiB <= 2 ? 120 : 300);
      const image = await makeFatImage(work, `${v.spec.fatBits}-${cs}.img`, v.spec);
      await copyIn(image, host);
      mtools('mattrib', image, '+r', '::/attrs/readonly.txt');
      mtools('mattrib', image, '+h', '::/attrs/hidden.txt');
      mtools('mattrib', image, '+s', '::/attrs/system.txt');
      mtools('mattrib', image, '+r', '::/attrs/ro dir');
      await fragment(image, work, cs);

      const data = await fsp.readFile(image);
      assert.equal(await fatDriver.detect(fileSource(data)), 'vfat');
      const fs = await Fat.open(fileSource(data));
      assert.equal(fs.geometry.fatBits, v.spec.fatBits);
      assert.equal(fs.blockSize, cs);
      assert.equal(fs.uuid, `${v.spec.serial?.slice(0, 4)}-${v.spec.serial?.slice(4)}`.toUpperCase());
      assert.equal(fs.label, v.spec.label ?? '');
      assert.equal(fs.type, 'vfat');

      const reference = await mtoolsTree(image, work);
      const attrs = mtoolsAttributes(image);
      const mine = await readerTree(fs);

      // The same names, byte for byte, at the same places.
      const paths = [...mine.keys()].filter((p) => p !== '').sort();
      assert.deepEqual(paths, [...reference.keys()].sort());
      assert.ok(paths.includes('/日本語のファイル.txt') && paths.includes('/readme.txt') && paths.includes('/lower.TXT') && paths.includes('/UP.txt') && paths.includes('/lowerdir'));

      const subdirsOf = (dir: string): number => [...reference.entries()].filter(([p, e]) => e.type === 'dir' && path.posix.dirname(p) === (dir === '' ? '/' : dir)).length;
      const inos = new Set<number>();
      for (const [p, seen] of mine) {
        assert.ok(!inos.has(seen.ino), `ino ${seen.ino} twice`);
        inos.add(seen.ino);
        assert.equal(seen.uid, 0);
        assert.equal(seen.gid, 0);
        assert.equal(seen.blksize, cs);
        assert.equal(seen.blocks, (Math.ceil(seen.size / cs) * cs) / 512, `${p} blocks`);
        if (p === '') {
          assert.equal(seen.ino, 1);
          assert.equal(seen.mode, 0o040755);
          assert.equal(seen.nlink, subdirsOf('') + 2);
          assert.equal(seen.mtimeNs, 0n);
          continue;
        }
        const ref = reference.get(p);
        assert.ok(ref, p);
        const a = attrs.get(p) ?? '';
        assert.equal(seen.ctimeNs, seen.mtimeNs, `${p}: ctime is the mtime`);
        assert.equal(seen.atimeNs % 86_400_000_000_000n, 0n, `${p}: atime is a date`);
        if (ref.type === 'dir') {
          assert.equal(seen.mode, 0o040755, `${p}: directories ignore the read-only attribute`);
          assert.equal(seen.nlink, subdirsOf(p) + 2, `${p} nlink`);
          assert.ok(seen.size > 0 && seen.size % cs === 0, `${p} size ${seen.size}`);
        } else {
          assert.equal(seen.mode, a.includes('R') ? 0o100555 : 0o100755, `${p} mode (attributes ${a})`);
          assert.equal(seen.nlink, 1);
          assert.equal(seen.size, ref.size, `${p} size`);
          assert.equal(seen.sha256, ref.sha256, `${p} content`);
          assert.equal(Number(seen.mtimeNs / 1_000_000n), ref.mtimeMs, `${p} mtime`);
        }
      }
      assert.equal(attrs.get('/attrs/readonly.txt'), 'AR');
      assert.equal(mine.get('/attrs/hidden.txt')?.mode, 0o100755);
      assert.equal(mine.get('/attrs/system.txt')?.mode, 0o100755);
      assert.equal(mine.get('/sizes/size-0.bin')?.blocks, 0);
      // Times: FAT keeps 2-second steps, so :06 stays and :01 becomes :00.
      assert.equal(mine.get('/readme.txt')?.mtimeNs, BigInt(T2001.getTime()) * 1_000_000n);
      assert.equal(mine.get('/a long file name with spaces and.dots.txt')?.mtimeNs, BigInt(T2020.getTime() - 1000) * 1_000_000n);
      const fragmented = mine.get('/frag/fragmented.bin');
      assert.ok(fragmented);
      assert.ok((await fs.clusterRuns(fragmented.handle)).length >= 2, 'the file reusing freed clusters is fragmented');
      assert.ok((mine.get('/many')?.size ?? 0) > cs, 'the big directory spans clusters');
      assert.equal(mine.get('/many')?.entries, v.spec.sizeMiB <= 2 ? 120 : 300);

      // Lookup ignores ASCII case and trailing dots, as vfat's.
      const root = fs.rootHandle;
      assert.equal(await fs.lookup(root, Buffer.from('README.TXT')), mine.get('/readme.txt')?.handle);
      assert.equal(await fs.lookup(root, Buffer.from('mixed case name.txt.')), mine.get('/Mixed Case Name.TXT')?.handle);
      assert.equal(await fs.lookup(root, Buffer.from('nothing here')), undefined);
      assert.deepEqual(await fs.xattrs(root), []);

      const st = await fs.statfs();
      assert.equal(st.bsize, cs);
      assert.equal(st.bfree * cs, mtoolsFreeBytes(image));
      assert.equal(st.namemax, 1530);
      assert.equal(st.blocks, fs.geometry.maxCluster - 2);
    });
  }
});
