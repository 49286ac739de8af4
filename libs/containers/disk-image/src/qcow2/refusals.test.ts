import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { openImage, MAX_CHAIN_LENGTH } from '../index';
import { qemuImg, qemuIo, rejectsWith, tempDir } from '../fixtures';

let top: string;
let store: string;
let outside: string;
let cleanup: () => void;

before(() => {
  ({ dir: top, cleanup } = tempDir('qcow2-refusals'));
  top = realpathSync(top);
  store = path.join(top, 'store');
  outside = path.join(top, 'outside');
  mkdirSync(store);
  mkdirSync(outside);
});
after(() => cleanup());

const at = (name: string): string => path.join(store, name);
const open = (name: string, format?: 'raw' | 'qcow2') => openImage(name, { storeRoot: store, format });

/** Rewrites bytes of an image file in place. */
function patch(file: string, edit: (b: Buffer) => void): void {
  const b = readFileSync(file);
  edit(b);
  writeFileSync(file, b);
}

describe('qcow2 features that are refused', () => {
  test('encryption (LUKS)', async () => {
    try {
      qemuImg(
        'create', '-q', '-f', 'qcow2', '--object', 'secret,id=s0,data=x',
        '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=1', at('luks.qcow2'), '1M',
      );
    } catch (err) {
      // qemu times its PBKDF on the CPU first and gives up on a machine too busy to measure:
      // the header then says LUKS (crypt_method 2) without qemu's help.
      if (!/accurate CPU usage/.test(String(err))) throw err;
      qemuImg('create', '-q', '-f', 'qcow2', at('luks.qcow2'), '1M');
      patch(at('luks.qcow2'), (b) => b.writeUInt32BE(2, 32));
    }
    await rejectsWith(open('luks.qcow2'), 'EOPNOTSUPP', /encryption.*LUKS.*not supported/);
    qemuImg('create', '-q', '-f', 'qcow2', at('aes.qcow2'), '1M');
    patch(at('aes.qcow2'), (b) => b.writeUInt32BE(1, 32));
    await rejectsWith(open('aes.qcow2'), 'EOPNOTSUPP', /encryption.*AES/);
  });

  test('an external data file', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${at('data.raw')}`, at('ext.qcow2'), '1M');
    await rejectsWith(open('ext.qcow2'), 'EOPNOTSUPP', /external data file/);
  });

  test('a compression type other than zlib and zstd, named', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', at('lz.qcow2'), '1M');
    // compression_type 2 (unassigned) behind the compression-type bit.
    patch(at('lz.qcow2'), (b) => {
      b.writeUInt32BE(b.readUInt32BE(76) | (1 << 3), 76);
      b[104] = 2;
    });
    await rejectsWith(open('lz.qcow2'), 'EOPNOTSUPP', /compression_type 2/);
  });

  test('an unknown incompatible feature bit, named', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', at('future.qcow2'), '1M');
    patch(at('future.qcow2'), (b) => b.writeUInt32BE(b.readUInt32BE(76) | (1 << 9), 76));
    await rejectsWith(open('future.qcow2'), 'EOPNOTSUPP', /incompatible feature bit 9/);
  });

  test('dirty and corrupt bits do not prevent reading', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', at('dirty.qcow2'), '1M');
    qemuIo(at('dirty.qcow2'), 'write -P 0x21 0 64k');
    patch(at('dirty.qcow2'), (b) => b.writeUInt32BE(b.readUInt32BE(76) | 3, 76));
    const img = await open('dirty.qcow2');
    try {
      assert.ok((await img.read(0, 65536)).every((x) => x === 0x21));
    } finally {
      await img.close();
    }
  });

  test('a format that the magic contradicts', async () => {
    writeFileSync(at('plain.raw'), Buffer.alloc(65536, 1));
    await rejectsWith(open('plain.raw', 'qcow2'), 'EINVAL', /plain\.raw is not a qcow2 image/);
    qemuImg('create', '-q', '-f', 'qcow2', at('real.qcow2'), '1M');
    await rejectsWith(open('real.qcow2', 'raw'), 'EINVAL', /real\.qcow2 is a qcow2 image: use qcow2: or image:/);
  });
});

describe('image paths and backing chains that are refused', () => {
  test('an absolute image path, a missing image, a missing backing file', async () => {
    await rejectsWith(open(at('real.qcow2')), 'EINVAL', /relative to the image store/);
    await rejectsWith(open('nope.qcow2'), 'ENOENT', /nope\.qcow2/);
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'gone.qcow2', '-F', 'qcow2', at('orphan.qcow2'), '1M');
    await rejectsWith(open('orphan.qcow2'), 'ENOENT', /backing file "gone\.qcow2" of orphan\.qcow2/);
  });

  test('an absolute backing path, even one inside the store', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', at('abs-base.qcow2'), '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', at('abs-base.qcow2'), '-F', 'qcow2', at('abs.qcow2'));
    await rejectsWith(open('abs.qcow2'), 'EACCES', /backing file ".*abs-base\.qcow2" of abs\.qcow2 is an absolute path/);
  });

  test('a backing path through .. out of the store', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', path.join(outside, 'secret.qcow2'), '1M');
    mkdirSync(at('vm'), { recursive: true });
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', '../../outside/secret.qcow2', '-F', 'qcow2', at('vm/dotdot.qcow2'), '1M');
    await rejectsWith(
      open('vm/dotdot.qcow2'),
      'EACCES',
      /backing file "\.\.\/\.\.\/outside\/secret\.qcow2" of vm\/dotdot\.qcow2 leads outside the store/,
    );
    await rejectsWith(open('../outside/secret.qcow2'), 'EACCES', /leads outside the store/);
  });

  test('symlinks out of the store, as the image or as its backing file', async () => {
    symlinkSync(path.join(outside, 'secret.qcow2'), at('link.qcow2'));
    await rejectsWith(open('link.qcow2'), 'EACCES', /image link\.qcow2 leads outside the store/);
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'link.qcow2', '-F', 'qcow2', at('via-link.qcow2'), '1M');
    await rejectsWith(open('via-link.qcow2'), 'EACCES', /backing file "link\.qcow2" of via-link\.qcow2 leads outside the store/);
    // A symlink that stays inside the store is fine.
    symlinkSync('real.qcow2', at('inside-link.qcow2'));
    const img = await open('inside-link.qcow2');
    assert.equal(img.files[0].path, at('real.qcow2'));
    await img.close();
  });

  test('a backing protocol instead of a file', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'nbd://example.com/x', '-F', 'raw', at('nbd.qcow2'), '1M');
    await rejectsWith(open('nbd.qcow2'), 'EOPNOTSUPP', /names a protocol/);
  });

  test('backing loops: A to B to A, and A to itself', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-b.qcow2', '-F', 'qcow2', at('loop-a.qcow2'), '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-a.qcow2', '-F', 'qcow2', at('loop-b.qcow2'), '1M');
    await rejectsWith(open('loop-a.qcow2'), 'EINVAL', /backing file "loop-a\.qcow2" of loop-b\.qcow2 .*loop/);
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'self.qcow2', '-F', 'qcow2', at('self.qcow2'), '1M');
    await rejectsWith(open('self.qcow2'), 'EINVAL', /loop/);
  });

  test(`a chain of ${MAX_CHAIN_LENGTH} images opens, one more is refused`, async () => {
    mkdirSync(at('deep'));
    const name = (i: number): string => `${String(i).padStart(3, '0')}.qcow2`;
    qemuImg('create', '-q', '-f', 'qcow2', at(`deep/${name(0)}`), '1M');
    qemuIo(at(`deep/${name(0)}`), 'write -P 0x7e 0 4k');
    // One overlay made by qemu-img, copied with its backing name rewritten (same length).
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', name(0), '-F', 'qcow2', at('template.qcow2'), '1M');
    const template = readFileSync(at('template.qcow2'));
    const nameAt = Number(template.readBigUInt64BE(8));
    for (let i = 1; i <= MAX_CHAIN_LENGTH; i++) {
      const copy = Buffer.from(template);
      copy.write(name(i - 1), nameAt, 'latin1');
      writeFileSync(at(`deep/${name(i)}`), copy);
    }
    const img = await open(`deep/${name(MAX_CHAIN_LENGTH - 1)}`);
    try {
      assert.equal(img.files.length, MAX_CHAIN_LENGTH);
      assert.ok((await img.read(0, 4096)).every((b) => b === 0x7e));
    } finally {
      await img.close();
    }
    await rejectsWith(open(`deep/${name(MAX_CHAIN_LENGTH)}`), 'EINVAL', /deeper than 128/);
  });
});

describe('corrupt metadata is EIO, at open or for the read that meets it', () => {
  test('an L2 entry pointing past the end of the file fails that read only', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', at('l2.qcow2'), '1M');
    qemuIo(at('l2.qcow2'), 'write -P 0x10 0 64k', 'write -P 0x20 64k 64k');
    patch(at('l2.qcow2'), (b) => {
      const l1 = Number(b.readBigUInt64BE(40));
      const l2 = Number(b.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
      b.writeBigUInt64BE(0x8000000000000000n | (1n << 40n), l2 + 8); // guest cluster 1 → 1 TiB
    });
    const img = await open('l2.qcow2');
    try {
      assert.ok((await img.read(0, 65536)).every((x) => x === 0x10));
      await rejectsWith(img.read(65536, 512), 'EIO', /L2 entry for guest offset 65536.*past the end of the file/);
    } finally {
      await img.close();
    }
  });

  test('an unaligned L1 entry, an absurd l1_size, a truncated header', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', at('l1.qcow2'), '1M');
    qemuIo(at('l1.qcow2'), 'write -P 0x10 0 64k');
    patch(at('l1.qcow2'), (b) => {
      const l1 = Number(b.readBigUInt64BE(40));
      b.writeBigUInt64BE(b.readBigUInt64BE(l1) + 512n, l1);
    });
    const img = await open('l1.qcow2');
    await rejectsWith(img.read(0, 1), 'EIO', /corrupt L1 entry 0.*not cluster-aligned/);
    await img.close();

    qemuImg('create', '-q', '-f', 'qcow2', at('huge.qcow2'), '1M');
    patch(at('huge.qcow2'), (b) => {
      b.writeBigUInt64BE(1n << 52n, 24); // 4 PiB virtual size
      b.writeUInt32BE(0xffffffff, 36);
    });
    await rejectsWith(open('huge.qcow2'), 'EOPNOTSUPP', /L1 table of \d+ entries/);
    patch(at('huge.qcow2'), (b) => b.writeUInt32BE(1, 36));
    await rejectsWith(open('huge.qcow2'), 'EOPNOTSUPP', /L1 table/);
    patch(at('huge.qcow2'), (b) => b.writeBigUInt64BE(1n << 30n, 24));
    await rejectsWith(open('huge.qcow2'), 'EIO', /l1_size 1 is too small/);

    writeFileSync(at('short.qcow2'), Buffer.from('QFI\xfb\0\0\0\x03', 'latin1'));
    await rejectsWith(open('short.qcow2'), 'EIO', /too short for a header/);
  });
});
