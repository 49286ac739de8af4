/**
 * The NTFS reader against ntfs-3g: images made by mkntfs (quick format) in
 * several cluster sizes, filled through a read-write ntfs-3g mount (see
 * fixture-tree: Windows-like tree, big B+ tree directory, hard links,
 * Interix and reparse-point symlinks, junctions, ADS, sparse, >4 GiB,
 * attribute lists, LZNT1-compressed files, DOS names, Unicode), then every
 * path compared with what ntfs-3g's read-only mount with default options
 * reports (lstat, readdir, readlink, content, xattrs), plus statfs, lookups
 * and the label and serial blkid prints.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Errno, isStrataError } from '@strata/errors';
import { FileSource } from '@strata/ext4';
import { Ntfs, ntfsDriver } from '@strata/ntfs';
import { makeImage, makeTempDir, ntfs3gSkipReason, orAttribute, patchRecord, recordsNamed, run, withNtfs3g } from '@strata/ntfs/dist/fixture-image';
import { FillOptions, fillTree } from '@strata/ntfs/dist/fixture-tree';
import { dataLayout, writeFragmentedFile } from '@strata/ntfs/dist/fixture-fragment';
import { readFilesystemTree } from '../support/filesystem-tree';
import { ALL_FIELDS, compareTrees, readKernelTree, type Tree } from '../support/tree-snapshot';

interface Variant {
  name: string;
  sizeMiB: number;
  mkntfs: string[];
  fill: FillOptions;
  /** Extra ntfs-3g options while filling. */
  fillMount?: string;
}

const VARIANTS: Variant[] = [
  {
    name: '4 KiB clusters: 3000-entry B+ tree directory, 3000-island sparse file with an attribute list, compressed files',
    sizeMiB: 160,
    mkntfs: ['-L', 'Windows Ünï'],
    fill: { bigDir: 3000, fragments: 3000, files: 150, depth: 40, compression: true },
  },
  {
    name: '512-byte clusters (index blocks span 8 clusters), compressed files with 8 KiB units',
    sizeMiB: 64,
    mkntfs: ['-c', '512', '-L', 'small'],
    fill: { bigDir: 600, fragments: 1200, files: 40, depth: 8, compression: true },
  },
  {
    name: '64 KiB clusters (index VCNs in 512-byte units), no compression',
    sizeMiB: 160,
    mkntfs: ['-c', '65536'],
    fill: { bigDir: 600, fragments: 400, files: 40, depth: 8, compression: false },
  },
  {
    name: '4 KiB sectors (4 KiB MFT records, 8 fixup strides): symlinks, fifos, sockets and devices as WSL reparse points',
    sizeMiB: 96,
    mkntfs: ['-s', '4096'],
    fill: { bigDir: 400, fragments: 800, files: 30, depth: 6, compression: true },
    fillMount: 'special_files=wsl',
  },
];

/** Names probed with lookup: case variants, DOS names, hidden metafiles, a long and a missing name. */
const PROBES: [string, string][] = [
  ['/', '$MFT'],
  ['/', '$Extend'],
  ['/', '$UpCase'],
  ['/', 'LONGFI~1.TXT'],
  ['/', 'long file name.txt'],
  ['/', 'Long File Name.txt'],
  ['/', 'README.TXT'],
  ['/', 'readme.txt'],
  ['/', 'WINDOWS'],
  ['/names', 'FILE.TXT'],
  ['/names', 'File.txt'],
  ['/names', 'file.txt'],
  ['/names', '😀 smile'],
  ['/Program Files', 'WINDOW~1'],
  ['/Program Files', 'Windows Defender'],
  ['/big', 'entry-00777-abcdefghijabcdefghijabcdefghij'],
  ['/big', 'entry-00777-abcdefghijabcdefghijabcdefghijX'],
  ['/big', 'ENTRY-00001-ABCDEFGHIJABCDEFGHIJ'],
];

const skipReason = ntfs3gSkipReason();
let work: string;
before(() => {
  work = makeTempDir('ntfs-3g-');
});
after(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

/** Directories whose listing order is compared (ntfs-3g lists in index order). */
const ORDERED = ['/', '/big', '/names', '/links'];

interface KernelView {
  tree: Tree;
  order: string[][];
  statfs: fs.StatsFs;
  probes: (number | undefined)[];
  mnt: string;
}

/** Names in the order the filesystem gives them (fs.readdirSync sorts; a Dir does not). */
function readdirOrder(dir: string): string[] {
  const d = fs.opendirSync(dir);
  const names: string[] = [];
  try {
    for (let e = d.readSync(); e; e = d.readSync()) names.push(e.name);
  } finally {
    d.closeSync();
  }
  return names;
}

async function resolve(reader: Ntfs, p: string): Promise<number | undefined> {
  let h: number | undefined = reader.rootHandle;
  for (const c of p.split('/').filter(Boolean)) {
    if (h === undefined) return undefined;
    h = await reader.lookup(h, Buffer.from(c));
  }
  return h;
}

for (const [i, v] of VARIANTS.entries()) {
  describe(v.name, { skip: skipReason }, () => {
    let image: string;
    let kernel: KernelView;
    before(async () => {
      image = makeImage(work, `v${i}.img`, v.sizeMiB, v.mkntfs);
      const options = ['rw', ...(v.fill.compression ? ['compression'] : []), ...(v.fillMount ? [v.fillMount] : [])].join(',');
      await withNtfs3g(image, options, (mnt) => fillTree(mnt, v.fill));
      kernel = await withNtfs3g(image, 'ro', (mnt) => ({
        tree: readKernelTree(mnt),
        order: ORDERED.map((d) => readdirOrder(path.join(mnt, d))),
        statfs: fs.statfsSync(mnt),
        probes: PROBES.map(([dir, name]) => {
          try {
            return fs.lstatSync(path.join(mnt, dir, name)).ino;
          } catch {
            return undefined;
          }
        }),
        mnt,
      }));
    });

    test('every path: lstat, readdir, readlink, content and xattrs equal ntfs-3g; statfs, label and serial too', async () => {
      const source = await FileSource.open(image);
      try {
        const events: unknown[] = [];
        // Junctions and absolute symlinks render under ntfs-3g's mount point: tell the reader where it was.
        const reader = await Ntfs.open(source, { mountPoint: kernel.mnt, log: (e) => events.push(e) });
        const { tree, failures } = await readFilesystemTree(reader);
        assert.deepEqual(failures, []);
        assert.deepEqual(compareTrees(kernel.tree, tree, ALL_FIELDS), []);
        assert.ok(kernel.tree.size > v.fill.bigDir + v.fill.files, `only ${kernel.tree.size} paths compared`);
        if (v.fillMount) assert.equal(kernel.tree.get('/special-fifo')?.mode, 0o010000, 'a WSL fifo: ntfs-3g gives it no permission bits');
        const st = await reader.statfs();
        const k = kernel.statfs;
        assert.deepEqual(
          { bsize: st.bsize, blocks: st.blocks, bfree: st.bfree, bavail: st.bavail, files: st.files, ffree: st.ffree },
          { bsize: k.bsize, blocks: k.blocks, bfree: k.bfree, bavail: k.bavail, files: k.files, ffree: k.ffree },
        );
        const blkid = (tag: string): string => {
          try {
            return run('blkid', ['-o', 'value', '-s', tag, image]).replace(/\n$/, '');
          } catch {
            return ''; // blkid exits 2 when the tag is absent
          }
        };
        assert.equal(reader.uuid, blkid('UUID'));
        assert.match(reader.uuid, /^[0-9A-F]{16}$/);
        assert.equal(reader.label, blkid('LABEL'));
        assert.equal(reader.needsRecovery, false);
        assert.equal(reader.type, 'ntfs');
        assert.deepEqual(events, []);
      } finally {
        await source.close();
      }
    });

    test('lookup: every listed name, case variants, DOS names and metafiles as ntfs-3g resolves them; readdir order', async () => {
      const source = await FileSource.open(image);
      try {
        const reader = await Ntfs.open(source, { mountPoint: kernel.mnt });
        const got = await Promise.all(PROBES.map(([dir, name]) => resolve(reader, path.posix.join(dir, name))));
        assert.deepEqual(got, kernel.probes);
        const order = await Promise.all(ORDERED.map(async (d) => (await reader.readdir((await resolve(reader, d))!)).map((e) => e.name.toString())));
        assert.deepEqual(order, kernel.order, 'readdir lists in the order ntfs-3g does');
        for (const dir of ['/', '/big', '/names', '/links', '/Windows/System32']) {
          const h = (await resolve(reader, dir))!;
          for (const e of await reader.readdir(h)) assert.equal(await reader.lookup(h, e.name), e.handle, `${dir}/${e.name.toString()}`);
        }
        // Without a mount point, targets are rendered as for a volume mounted at "/".
        const unmounted = await Ntfs.open(source);
        assert.equal((await unmounted.readlink((await resolve(unmounted, '/junction-system32'))!)).toString(), '/Windows/System32');
        assert.equal((await unmounted.readlink((await resolve(unmounted, '/junction-other-drive'))!)).toString(), '/.NTFS-3G/D:/Data');
        const names = (await resolve(reader, '/names'))!;
        assert.ok(await reader.lookup(names, Buffer.from('n'.repeat(255))));
        await assert.rejects(reader.lookup(names, Buffer.from('n'.repeat(256))), (e: unknown) => isStrataError(e) && e.errno === Errno.ENAMETOOLONG);
        const file = (await resolve(reader, '/links/original'))!;
        await assert.rejects(reader.readdir(file), (e: unknown) => isStrataError(e) && e.errno === Errno.ENOTDIR);
        await assert.rejects(reader.read(reader.rootHandle, 0, 1), (e: unknown) => isStrataError(e) && e.errno === Errno.EISDIR);
        assert.equal(await ntfsDriver.detect(source), 'ntfs');
      } finally {
        await source.close();
      }
    });
  });
}

describe('fragmentation', { skip: skipReason }, () => {
  test('a file fragmented cluster by cluster: its runlist spans extension records, and reads as ntfs-3g reads it', async () => {
    const image = makeImage(work, 'fragmented.img', 16, []);
    const size = await writeFragmentedFile(image);
    const layout = await dataLayout(image, 'fragmented');
    assert.ok(layout.runs > 500 && layout.extentRecords > 2, JSON.stringify(layout));
    const kernel = await withNtfs3g(image, 'ro', (mnt) => readKernelTree(mnt));
    assert.equal(kernel.get('/fragmented')?.size, size);
    const source = await FileSource.open(image);
    try {
      const reader = await Ntfs.open(source);
      const { tree, failures } = await readFilesystemTree(reader);
      assert.deepEqual(failures, []);
      assert.deepEqual(compareTrees(kernel, tree, ALL_FIELDS), []);
    } finally {
      await source.close();
    }
  });
});

describe('unclean volumes', { skip: skipReason }, () => {
  test('a dirty or hibernated volume is served as ntfs-3g -o ro shows it, with needsRecovery and a warning', async () => {
    const image = makeImage(work, 'unclean.img', 16, []);
    await withNtfs3g(image, 'rw', (mnt) => {
      fs.writeFileSync(path.join(mnt, 'hiberfil.sys'), Buffer.concat([Buffer.from('hibr'), Buffer.alloc(4092)]));
      fs.writeFileSync(path.join(mnt, 'data.txt'), 'still readable');
    });
    const kernel = await withNtfs3g(image, 'ro', (mnt) => readKernelTree(mnt));
    const source = await FileSource.open(image);
    try {
      const events: Record<string, unknown>[] = [];
      const reader = await Ntfs.open(source, { log: (e) => events.push(e) });
      assert.equal(reader.needsRecovery, true);
      assert.ok(events.some((e) => e.event === 'ntfs.unclean' && String(e.reason).includes('hibernated')), JSON.stringify(events));
      const { tree, failures } = await readFilesystemTree(reader);
      assert.deepEqual(failures, []);
      assert.deepEqual(compareTrees(kernel, tree, ALL_FIELDS), []);
    } finally {
      await source.close();
    }
  });

  test('a volume marked dirty in $Volume (and its $MFTMirr copy) reads as ntfs-3g -o ro shows it', async () => {
    const image = makeImage(work, 'dirty.img', 16, []);
    await withNtfs3g(image, 'rw', (mnt) => fs.writeFileSync(path.join(mnt, 'data.txt'), 'dirty but readable'));
    const img = fs.readFileSync(image);
    const boot = { cluster: img.readUInt16LE(0x0b) * img[0x0d], mft: Number(img.readBigInt64LE(0x30)), mirr: Number(img.readBigInt64LE(0x38)) };
    for (const lcn of [boot.mft, boot.mirr]) {
      patchRecord(img, lcn * boot.cluster + 3 * 1024, 1024, (rec) => assert.ok(orAttribute(rec, 0x70, { valueAt: 10, bits: 1, width: 2 })));
    }
    fs.writeFileSync(image, img);
    const kernel = await withNtfs3g(image, 'ro', (mnt) => readKernelTree(mnt));
    const source = await FileSource.open(image);
    try {
      const events: Record<string, unknown>[] = [];
      const reader = await Ntfs.open(source, { log: (e) => events.push(e) });
      assert.equal(reader.needsRecovery, true);
      assert.ok(events.some((e) => e.event === 'ntfs.unclean' && String(e.reason).includes('dirty')), JSON.stringify(events));
      const { tree, failures } = await readFilesystemTree(reader);
      assert.deepEqual(failures, []);
      assert.deepEqual(compareTrees(kernel, tree, ALL_FIELDS), []);
      assert.ok(kernel.has('/data.txt'));
    } finally {
      await source.close();
    }
  });

  test('EFS-encrypted files: stat as ntfs-3g shows them; non-resident data is EACCES, resident data readable, as ntfs-3g answers', async () => {
    const image = makeImage(work, 'efs.img', 16, []);
    await withNtfs3g(image, 'rw', (mnt) => {
      fs.writeFileSync(path.join(mnt, 'secret.bin'), Buffer.alloc(100_000, 0x73));
      fs.writeFileSync(path.join(mnt, 'small-secret.txt'), 'small');
    });
    const img = fs.readFileSync(image);
    for (const name of ['secret.bin', 'small-secret.txt']) {
      const [at] = recordsNamed(img, name);
      patchRecord(img, at, 1024, (rec) => {
        assert.ok(orAttribute(rec, 0x10, { valueAt: 0x20, bits: 0x4000 }));
        assert.ok(orAttribute(rec, 0x80, { header: 0x4000 }));
      });
    }
    fs.writeFileSync(image, img);
    const kernel = await withNtfs3g(image, 'ro', (mnt) => {
      const readErr = (name: string): string | undefined => {
        try {
          fs.readFileSync(path.join(mnt, name));
          return undefined;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code;
        }
      };
      return { tree: readKernelTree(mnt, false), big: readErr('secret.bin'), small: fs.readFileSync(path.join(mnt, 'small-secret.txt'), 'utf8') };
    });
    assert.equal(kernel.big, 'EACCES');
    const source = await FileSource.open(image);
    try {
      const reader = await Ntfs.open(source);
      const { tree, failures } = await readFilesystemTree(reader, false);
      assert.deepEqual(failures, []);
      assert.deepEqual(compareTrees(kernel.tree, tree, ALL_FIELDS), []);
      const big = (await reader.lookup(reader.rootHandle, Buffer.from('secret.bin')))!;
      await assert.rejects(reader.read(big, 0, 10), (e: unknown) => isStrataError(e) && e.errno === Errno.EACCES);
      const small = (await reader.lookup(reader.rootHandle, Buffer.from('small-secret.txt')))!;
      assert.equal((await reader.read(small, 0, 100)).toString(), kernel.small);
    } finally {
      await source.close();
    }
  });

  test('torn primary copies of records 0-3 are read from $MFTMirr (ntfs-3g refuses that mount): the tree is the intact image\'s', async () => {
    const image = makeImage(work, 'mirror.img', 16, ['-L', 'mirrored']);
    await withNtfs3g(image, 'rw', (mnt) => {
      fs.mkdirSync(path.join(mnt, 'dir'));
      fs.writeFileSync(path.join(mnt, 'dir', 'file'), 'through the mirror');
    });
    const intact = await FileSource.open(image);
    let expected: Tree;
    try {
      const reader = await Ntfs.open(intact);
      expected = (await readFilesystemTree(reader)).tree;
    } finally {
      await intact.close();
    }
    const img = fs.readFileSync(image);
    const mftAt = Number(img.readBigInt64LE(0x30)) * img.readUInt16LE(0x0b) * img[0x0d];
    for (const n of [0, 3]) img[mftAt + n * 1024 + 1022] ^= 0xff; // the second sector's tail no longer matches the update sequence number
    const torn = path.join(work, 'mirror-torn.img');
    fs.writeFileSync(torn, img);
    const source = await FileSource.open(torn);
    try {
      const events: Record<string, unknown>[] = [];
      const reader = await Ntfs.open(source, { log: (e) => events.push(e) });
      assert.equal(reader.label, 'mirrored');
      const { tree, failures } = await readFilesystemTree(reader);
      assert.deepEqual(failures, []);
      assert.deepEqual(compareTrees(expected, tree, ALL_FIELDS), []);
      assert.ok(events.some((e) => e.event === 'ntfs.mftmirr' && e.record === 0), JSON.stringify(events));
      assert.ok(events.some((e) => e.event === 'ntfs.mftmirr' && e.record === 3), JSON.stringify(events));
    } finally {
      await source.close();
    }
  });

  test('damage stays with its object: a torn file record fails that file only, a bad index block that directory only', async () => {
    const image = makeImage(work, 'damage.img', 16, []);
    await withNtfs3g(image, 'rw', (mnt) => {
      fs.writeFileSync(path.join(mnt, 'victim.txt'), 'torn');
      fs.writeFileSync(path.join(mnt, 'bystander.txt'), 'fine');
      fs.mkdirSync(path.join(mnt, 'big'));
      for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(mnt, 'big', `entry-${i}-${'x'.repeat(40)}`), '');
      fs.mkdirSync(path.join(mnt, 'other'));
      fs.writeFileSync(path.join(mnt, 'other', 'file'), 'other');
    });
    const img = fs.readFileSync(image);
    const [victim] = recordsNamed(img, 'victim.txt');
    img[victim + 510] ^= 0xff; // the first sector no longer ends with the update sequence number
    let indx = -1;
    const bigName = Buffer.from('entry-', 'utf16le');
    for (let at = 0; at < img.length && indx < 0; at += 4096) {
      if (img.toString('latin1', at, at + 4) === 'INDX' && img.subarray(at, at + 4096).includes(bigName)) indx = at;
    }
    patchRecord(img, indx, 4096, (blk) => blk.writeUInt32LE(0xfff0, 0x18 + 4)); // index length past the block
    fs.writeFileSync(image, img);
    const kernel = await withNtfs3g(image, 'ro', (mnt) => ({
      listed: fs.readdirSync(mnt).includes('victim.txt'),
      stat: ((): string | undefined => {
        try {
          fs.lstatSync(path.join(mnt, 'victim.txt'));
          return undefined;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code;
        }
      })(),
      other: readKernelTree(path.join(mnt, 'other')),
    }));
    assert.equal(kernel.listed, true);
    assert.equal(kernel.stat, 'EIO');
    const source = await FileSource.open(image);
    try {
      const reader = await Ntfs.open(source);
      const root = await reader.readdir(reader.rootHandle);
      const victimEntry = root.find((e) => e.name.toString() === 'victim.txt');
      assert.ok(victimEntry, 'the damaged file is still listed, as ntfs-3g lists it');
      await assert.rejects(reader.node(victimEntry.handle), (e: unknown) => isStrataError(e) && e.errno === Errno.EUCLEAN);
      const bystander = (await reader.lookup(reader.rootHandle, Buffer.from('bystander.txt')))!;
      assert.equal((await reader.read(bystander, 0, 10)).toString(), 'fine');
      const big = (await reader.lookup(reader.rootHandle, Buffer.from('big')))!;
      await assert.rejects(reader.readdir(big), (e: unknown) => isStrataError(e) && e.errno === Errno.EUCLEAN);
      const other = (await reader.lookup(reader.rootHandle, Buffer.from('other')))!;
      const otherTree = new Map([...(await readFilesystemTree(reader)).tree].filter(([p]) => p === '/other' || p.startsWith('/other/')).map(([p, v]) => [p.slice('/other'.length) || '/', v]));
      assert.deepEqual(compareTrees(kernel.other, otherTree, ALL_FIELDS), []);
      assert.equal((await reader.readdir(other)).length, 1);
    } finally {
      await source.close();
    }
  });

  test('garbage is EINVAL; detect says no', async () => {
    const image = path.join(work, 'garbage.img');
    fs.writeFileSync(image, Buffer.alloc(1 << 20, 0x5a));
    const source = await FileSource.open(image);
    try {
      assert.equal(await ntfsDriver.detect(source), undefined);
      await assert.rejects(Ntfs.open(source), (e: unknown) => isStrataError(e) && e.errno === Errno.EINVAL);
    } finally {
      await source.close();
    }
  });
});
