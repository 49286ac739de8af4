/**
 * The superblock and inode decoders on bytes written by mkfs.xfs (from a
 * prototype tree, no mount needed), against what xfs_db prints for the
 * same image; refusals at open for features this reader does not handle.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Errno, isStrataError } from '@strata/errors';
import { xfsCrc } from './checksum';
import { decodeExtent } from './extent';
import { locateInode } from './geometry';
import { parseInode } from './inode';
import { parseSuperblock } from './superblock';
import { ImageFile, MemorySource, hasTool, makeImage, makeTempDir, patternBytes, protoImage, run } from './fixture-image';
import { Xfs } from './xfs';

let work: string;
let src: string;
before(() => {
  work = makeTempDir('xfs-db-');
  src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'dir', 'sub'), { recursive: true });
  for (const size of [0, 7, 4096, 200_000]) fs.writeFileSync(path.join(src, 'dir', `f${size}`), patternBytes(size, String(size)));
  for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(src, 'dir', 'sub', `n${i}`), '');
  fs.symlinkSync('dir/f7', path.join(src, 'link'));
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** `xfs_db -r` running `commands`, as field → value lines. */
function xfsDb(image: string, commands: string[]): string[] {
  return run('xfs_db', ['-r', ...commands.flatMap((c) => ['-c', c]), image]).trim().split('\n');
}

function value(lines: string[], field: string): string {
  const line = lines.find((l) => l.startsWith(`${field} = `));
  assert.ok(line, `xfs_db printed no ${field}`);
  return line.slice(field.length + 3);
}

async function handles(reader: Xfs): Promise<number[]> {
  const out = [reader.rootHandle];
  for (let i = 0; i < out.length; i++) {
    const node = await reader.node(out[i]);
    if ((node.mode & 0o170000) === 0o040000) out.push(...(await reader.readdir(out[i])).map((e) => e.handle));
  }
  return out;
}

for (const [name, args] of [['v5', []], ['v4', ['-m', 'crc=0']]] as const) {
  describe(`${name} superblock and inodes against xfs_db`, { skip: hasTool('xfs_db') ? undefined : 'needs xfsprogs' }, () => {
    test('geometry, counters, uuid, and every inode core field xfs_db prints', async () => {
      const image = protoImage(work, `${name}.img`, 32, [...args, '-L', 'strata'], src);
      const source = ImageFile.open(image);
      try {
        const reader = await Xfs.open(source);
        const sbLines = xfsDb(image, ['sb 0', 'p uuid rootino blocksize agcount dblocks icount ifree logblocks']);
        assert.equal(reader.uuid, value(sbLines, 'uuid'));
        assert.equal(reader.rootHandle, Number(value(sbLines, 'rootino')));
        assert.equal(reader.blockSize, Number(value(sbLines, 'blocksize')));
        assert.equal(reader.label, 'strata');
        const st = await reader.statfs();
        assert.equal(st.blocks, Number(value(sbLines, 'dblocks')) - Number(value(sbLines, 'logblocks')));
        const all = await handles(reader);
        assert.ok(all.length > 200);
        const sample = all.filter((_, i) => i < 12 || i % 40 === 0);
        const lines = xfsDb(image, sample.flatMap((h) => [`inode ${h}`, 'p core.mode core.uid core.gid core.size core.nblocks core.nextents core.nlinkv2']));
        const per = lines.length / sample.length;
        for (const [k, h] of sample.entries()) {
          const chunk = lines.slice(k * per, (k + 1) * per);
          const node = await reader.node(h);
          assert.equal(node.mode, parseInt(value(chunk, 'core.mode'), 8), `inode ${h} mode`);
          assert.equal(node.uid, Number(value(chunk, 'core.uid')));
          assert.equal(node.gid, Number(value(chunk, 'core.gid')));
          assert.equal(node.size, Number(value(chunk, 'core.size')));
          assert.equal(node.nlink, Number(value(chunk, 'core.nlinkv2')));
          assert.equal(node.blocks, Number(value(chunk, 'core.nblocks')) * 8);
        }
      } finally {
        source.close();
      }
    });
  });
}

describe('refused at open', { skip: hasTool('mkfs.xfs') ? undefined : 'needs xfsprogs' }, () => {
  test('a realtime device, metadir and unknown incompatible features: EOPNOTSUPP naming them; garbage: EINVAL', async () => {
    const rt = path.join(work, 'rt.img');
    fs.closeSync(fs.openSync(rt, 'w'));
    fs.truncateSync(rt, 16 << 20);
    const data = makeImage(work, 'data-rt.img', 32, ['-r', `rtdev=${rt}`]);
    await assert.rejects(Xfs.open(ImageFile.open(data)), (err) => isStrataError(err) && err.errno === Errno.EOPNOTSUPP && /realtime/.test(err.message));

    const plain = fs.readFileSync(makeImage(work, 'plain.img', 32, []));
    const withIncompat = (bits: number): MemorySource => {
      const copy = Buffer.from(plain);
      copy.writeUInt32BE(copy.readUInt32BE(216) | bits, 216);
      copy.writeUInt32LE(xfsCrc(copy, 0, 512, 224), 224);
      return new MemorySource(copy);
    };
    await assert.rejects(Xfs.open(withIncompat(0x100)), (err) => isStrataError(err) && err.errno === Errno.EOPNOTSUPP && /metadir/.test(err.message));
    await assert.rejects(Xfs.open(withIncompat(0x8000)), (err) => isStrataError(err) && err.errno === Errno.EOPNOTSUPP && /0x8000/.test(err.message));
    const badCrc = Buffer.from(plain);
    badCrc[300] ^= 1;
    await assert.rejects(Xfs.open(new MemorySource(badCrc)), (err) => isStrataError(err) && err.errno === Errno.EUCLEAN);
    await assert.rejects(Xfs.open(new MemorySource(Buffer.alloc(1 << 20))), (err) => isStrataError(err) && err.errno === Errno.EINVAL);
    await assert.rejects(Xfs.open(new MemorySource(plain.subarray(0, 1 << 20))), (err) => isStrataError(err) && err.errno === Errno.EUCLEAN);
  });
});

describe('damage stays with the object it touches', { skip: hasTool('mkfs.xfs') ? undefined : 'needs xfsprogs' }, () => {
  test('a bad inode CRC fails that inode with EUCLEAN; a bad directory block fails that directory; the rest reads', async () => {
    const pristine = fs.readFileSync(protoImage(work, 'damage.img', 32, [], src));
    const reader = await Xfs.open(new MemorySource(pristine));
    const dir = (await reader.lookup(reader.rootHandle, Buffer.from('dir')))!;
    const sub = (await reader.lookup(dir, Buffer.from('sub')))!;
    const victim = (await reader.lookup(dir, Buffer.from('f7')))!;
    const sibling = (await reader.lookup(dir, Buffer.from('f4096')))!;
    const loc = locateInode(parseSuperblock(pristine.subarray(0, 4096), pristine.length), victim)!;

    // Bad arguments.
    const bad = (errno: number) => (err: unknown): boolean => isStrataError(err) && err.errno === errno;
    await assert.rejects(reader.node(0), bad(Errno.EINVAL));
    await assert.rejects(reader.node(2 ** 60), bad(Errno.EINVAL));
    await assert.rejects(reader.read(victim, -1, 10), bad(Errno.EINVAL));
    await assert.rejects(reader.read(dir, 0, 10), bad(Errno.EISDIR));
    await assert.rejects(reader.readlink(victim), bad(Errno.EINVAL));
    await assert.rejects(reader.readdir(victim), bad(Errno.ENOTDIR));
    assert.equal((await reader.read(victim, 1000, 10)).length, 0);

    const image = Buffer.from(pristine);
    image[loc.offset + 60] ^= 0x10; // di_size: the CRC no longer matches
    const damaged = await Xfs.open(new MemorySource(image));
    await assert.rejects(damaged.node(victim), (err) => isStrataError(err) && err.errno === Errno.EUCLEAN && /bad CRC/.test(err.message));
    await assert.rejects(damaged.read(victim, 0, 10), (err) => isStrataError(err) && err.errno === Errno.EUCLEAN);
    assert.ok((await damaged.readdir(dir)).some((e) => e.handle === victim), 'the entry is still listed');
    assert.equal((await damaged.read(sibling, 0, 4096)).length, 4096);

    // sub/ has 200 entries: a block-form or leaf directory with its data in a block of its own.
    const subNode = await reader.node(sub);
    assert.ok(subNode.blocks > 0);
    const image2 = Buffer.from(pristine);
    const sb = parseSuperblock(pristine.subarray(0, 4096), pristine.length);
    const subInode = parseInode(sb, sub, pristine.subarray(locateInode(sb, sub)!.offset, locateInode(sb, sub)!.offset + sb.inodeSize))!;
    const first = decodeExtent(sb, subInode.dataFork, 0, 'sub');
    image2[first.block * sb.blockSize + 200] ^= 0xff;
    const damaged2 = await Xfs.open(new MemorySource(image2));
    await assert.rejects(damaged2.readdir(sub), (err) => isStrataError(err) && err.errno === Errno.EUCLEAN);
    assert.equal((await damaged2.readdir(dir)).length, 5);
    assert.equal((await damaged2.node(sub)).size, subNode.size);
  });
});
