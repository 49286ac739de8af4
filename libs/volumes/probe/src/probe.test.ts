import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStrataError } from '@strata/errors';
import { describeProbe } from './describe';
import {
  LUKS_UUID,
  MIB,
  exfatImage,
  f2fsImage,
  hfsImage,
  hfsPlusImage,
  isoImage,
  luksImage,
  magicImage,
  mdV090Image,
  mdV1Image,
  memorySource,
  partitionTableImage,
  squashfsImage,
  swapV0Image,
  udfImage,
  zfsImage,
} from './fixture-signatures';
import { probe } from './probe';
import type { Probe } from './probe-result';

const of = (b: Buffer): Promise<Probe> => probe(memorySource(b));

test('HFS+ and HFS', async () => {
  const plus = await of(hfsPlusImage());
  assert.deepEqual([plus.kind, plus.type, plus.readable], ['filesystem', 'hfsplus', false]);
  assert.equal(describeProbe(plus), 'HFS+');
  const classic = await of(hfsImage('Classic'));
  assert.deepEqual([classic.type, classic.label], ['hfs', 'Classic']);
  assert.equal(describeProbe(classic), 'HFS (label "Classic")');
});

test('ISO 9660 with its volume id; UDF by its NSR descriptor', async () => {
  const iso = await of(isoImage('UBUNTU_24'));
  assert.deepEqual([iso.kind, iso.type, iso.label, iso.readable], ['filesystem', 'iso9660', 'UBUNTU_24', false]);
  assert.equal(describeProbe(iso), 'ISO 9660 (label "UBUNTU_24")');
  assert.equal((await of(udfImage())).type, 'udf');
});

test('LUKS1, LUKS2 (label), a LUKS2 secondary header alone', async () => {
  const v1 = await of(luksImage(1));
  assert.deepEqual(v1, { kind: 'luks', type: 'crypto_LUKS', version: '1', uuid: LUKS_UUID, detail: 'LUKS1', readable: false });
  assert.equal(describeProbe(v1), 'a LUKS container (encrypted)');
  const v2 = await of(luksImage(2, { label: 'cryptroot' }));
  assert.deepEqual([v2.version, v2.label, v2.uuid], ['2', 'cryptroot', LUKS_UUID]);
  const secondary = await of(luksImage(2, { secondaryOnly: true }));
  assert.deepEqual([secondary.type, secondary.version], ['crypto_LUKS', '2']);
});

test('md RAID superblocks 1.2, 1.1, 1.0 and 0.90', async () => {
  const v12 = await of(mdV1Image(4 * MIB, 4096, 'host:0'));
  assert.deepEqual([v12.kind, v12.type, v12.version, v12.label, v12.uuid], ['raid', 'linux_raid_member', '1.2', 'host:0', '01234567-89ab-cdef-fedc-ba9876543210']);
  assert.equal(describeProbe(v12), 'a Linux software RAID member (md raid1, metadata 1.2)');
  assert.equal((await of(mdV1Image(4 * MIB, 0, 'x'))).version, '1.1');
  assert.equal((await of(mdV1Image(4 * MIB, 4 * MIB - 8192, 'x'))).version, '1.0');
  const misplaced = mdV1Image(4 * MIB, 4096, 'x');
  misplaced.writeBigUInt64LE(0n, 4096 + 144);
  assert.equal((await of(misplaced)).kind, 'unknown');
  const v090 = await of(mdV090Image(4 * MIB));
  assert.deepEqual([v090.type, v090.version, v090.uuid], ['linux_raid_member', '0.90.0', '67452301-efcd-ab89-98ba-dcfe10325476']);
});

test('SquashFS, swap v0, ZFS, exFAT, and the magic-only formats', async () => {
  assert.deepEqual(await of(squashfsImage()), { kind: 'filesystem', type: 'squashfs', version: '4.0', readable: false });
  assert.deepEqual(await of(swapV0Image()), { kind: 'swap', type: 'swap', version: '0', readable: false });
  assert.equal(describeProbe(await of(swapV0Image())), 'Linux swap');
  assert.equal((await of(zfsImage())).type, 'zfs_member');
  const exfat = await of(exfatImage('Camera'));
  assert.deepEqual([exfat.type, exfat.label, exfat.uuid, exfat.version], ['exfat', 'Camera', '1234-5678', '1.0']);
  assert.equal((await of(magicImage(32, 'NXSB'))).type, 'apfs');
  assert.equal((await of(magicImage(1024, '\xe2\xe1\xf5\xe0'))).type, 'erofs');
  const f2fs = await of(f2fsImage('Phone'));
  assert.deepEqual([f2fs.type, f2fs.version, f2fs.label, f2fs.uuid], ['f2fs', '1.15', 'Phone', '01234567-89ab-cdef-fedc-ba9876543210']);
  assert.equal((await of(magicImage(0, '\0\0\0ReFS\0'))).type, 'ReFS');
  const bl = await of(magicImage(0, '\xeb\x58\x90-FVE-FS-'));
  assert.equal(bl.type, 'BitLocker');
  assert.equal(describeProbe(bl), 'a BitLocker volume (encrypted)');
});

test('partition tables: PTTYPE gpt and dos', async () => {
  const gpt = await of(partitionTableImage('gpt'));
  assert.deepEqual([gpt.kind, gpt.type], ['partition-table', 'gpt']);
  assert.equal(describeProbe(gpt), 'a partition table (GPT)');
  assert.equal((await of(partitionTableImage('dos'))).type, 'dos');
  const pmbr = await of(partitionTableImage('pmbr'));
  assert.deepEqual([pmbr.kind, pmbr.type], ['partition-table', 'PMBR']);
});

test('zeros are empty, garbage is unknown, a tiny source is either', async () => {
  assert.deepEqual(await of(Buffer.alloc(4 * MIB)), { kind: 'empty', type: '', readable: false });
  assert.equal(describeProbe(await of(Buffer.alloc(4 * MIB))), 'nothing recognisable (all zeros)');
  const garbage = Buffer.alloc(MIB);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 2654435761) >>> 24;
  const g = await of(garbage);
  assert.equal(g.kind, 'unknown');
  assert.equal(describeProbe(g), 'nothing recognisable');
  assert.equal((await of(Buffer.alloc(0))).kind, 'empty');
  assert.equal((await of(Buffer.from([1, 2, 3]))).kind, 'unknown');
  // A signature away from the start only: not all zeros.
  const tail = Buffer.alloc(4 * MIB);
  tail[tail.length - 1] = 1;
  assert.equal((await of(tail)).kind, 'unknown');
});

test('a source that fails: the StrataError passes, anything else is EIO', async () => {
  await assert.rejects(probe({ size: MIB, read: async () => { throw new TypeError('boom'); } }), (e: unknown) => isStrataError(e) && e.errnoName === 'EIO' && /boom/.test(e.message));
});

test('fuzz: every signature image with random bytes changed resolves with a probe', async () => {
  const images = [hfsPlusImage(), hfsImage('x'), isoImage('x'), udfImage(), luksImage(2, { label: 'l' }), mdV1Image(MIB, 4096, 'n'), mdV090Image(MIB), squashfsImage(), zfsImage(), exfatImage('e'), partitionTableImage('gpt')];
  let seed = 99;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (let i = 0; i < 400; i++) {
    const d = Buffer.from(images[i % images.length]);
    for (let k = 0; k < 1 + Math.floor(rnd() * 20); k++) {
      // Mostly where the structures are: the first 128 KiB.
      const at = rnd() < 0.8 ? Math.floor(rnd() * 131072) % d.length : Math.floor(rnd() * d.length);
      d[at] = Math.floor(rnd() * 256);
    }
    if (rnd() < 0.1) d.fill(0xff, 0, 8192);
    const p = await probe(memorySource(d.subarray(0, rnd() < 0.2 ? Math.floor(rnd() * d.length) : d.length)));
    assert.ok(typeof p.kind === 'string' && typeof describeProbe(p) === 'string');
  }
});
