import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isStrataError } from '@strata/errors';
import { ATTR_SIZE, STATFS_SIZE, encodeAttr, encodeListing, encodeNames, encodeStatfs, encodeXattrs } from './wire';
import { parseMountinfo, topMountAt } from './mountinfo';
import { addon } from './native';

describe('encodeAttr', () => {
  it('lays out a fuse_attr with 64-bit ino and split nanosecond times', () => {
    const b = encodeAttr(
      { mode: 0o100644, size: 5000n, nlink: 3, uid: 1000, gid: 100, mtimeNs: 1_234_567_890_987_654_321n, atimeNs: -1n },
      2n ** 40n + 7n,
    );
    assert.equal(b.length, ATTR_SIZE);
    assert.equal(b.readBigUInt64LE(0), 2n ** 40n + 7n);
    assert.equal(b.readBigUInt64LE(8), 5000n);
    assert.equal(b.readBigUInt64LE(16), 10n, 'blocks default to ceil(size / 512)');
    // One nanosecond before the epoch is second -1 (two's complement) plus 999999999 ns.
    assert.equal(b.readBigInt64LE(24), -1n);
    assert.equal(b.readUInt32LE(48), 999_999_999);
    assert.equal(b.readBigUInt64LE(32), 1_234_567_890n);
    assert.equal(b.readUInt32LE(52), 987_654_321);
    assert.equal(b.readUInt32LE(60), 0o100644);
    assert.equal(b.readUInt32LE(64), 3);
    assert.equal(b.readUInt32LE(68), 1000);
    assert.equal(b.readUInt32LE(72), 100);
    assert.equal(b.readUInt32LE(80), 4096, 'blksize default');
  });

  it('reports attr.ino rather than the node key when both are given', () => {
    assert.equal(encodeAttr({ mode: 0o040755, ino: 99n }, 5n).readBigUInt64LE(0), 99n);
  });

  it('packs the plain-number st_ino and times (AttrNumbers) byte for byte as their bigint forms', () => {
    const NS = 1_000_000_000n;
    const cases = [
      { stIno: 2 ** 40 + 7, atimeSec: -1, atimeNsec: 999_999_999, mtimeSec: 1_234_567_890, mtimeNsec: 987_654_321, ctimeSec: -(2 ** 40), ctimeNsec: 0, size: 2 ** 52 + 3 },
      { stIno: 0, atimeSec: 0, atimeNsec: 0, mtimeSec: 2 ** 33, mtimeNsec: 1, ctimeSec: -(2 ** 32), ctimeNsec: 5, size: 5000 },
    ];
    for (const n of cases) {
      const bigints = {
        mode: 0o100644,
        size: BigInt(n.size),
        ino: BigInt(n.stIno),
        atimeNs: BigInt(n.atimeSec) * NS + BigInt(n.atimeNsec),
        mtimeNs: BigInt(n.mtimeSec) * NS + BigInt(n.mtimeNsec),
        ctimeNs: BigInt(n.ctimeSec) * NS + BigInt(n.ctimeNsec),
      };
      // Both forms on one object, the bigint ones wrong: the numbers are the ones packed.
      const numbers = { ...n, mode: 0o100644, ino: 1n, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n };
      assert.deepEqual(encodeAttr(numbers, 9n), encodeAttr(bigints, 9n));
      const entry = (attr: typeof bigints | typeof numbers) => encodeListing([{ name: Buffer.from('f'), ino: 4n, attr }], 1n, 1n);
      assert.deepEqual(entry(numbers), entry({ ...bigints }));
    }
    // Out of range (a nanosecond count of a second or more): the bigint fields are used instead.
    const odd = { mode: 0o100644, stIno: 3, atimeSec: 1, atimeNsec: 1_000_000_000, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0, ino: 8n, atimeNs: 7n };
    const b = encodeAttr(odd, 1n);
    assert.equal(b.readBigUInt64LE(0), 8n);
    assert.equal(b.readUInt32LE(48), 7);
  });

  it('matches the addon on the struct sizes', () => {
    assert.equal(addon().attrSize, ATTR_SIZE);
    assert.equal(addon().statfsSize, STATFS_SIZE);
  });

  it('refuses a mode without a file type, a negative size and a non-integer uid', () => {
    for (const attr of [{ mode: 0o644 }, { mode: 0o100644, size: -1 }, { mode: 0o100644, uid: 1.5 }]) {
      assert.throws(() => encodeAttr(attr, 1n), (e: unknown) => isStrataError(e) && e.errno === 22);
    }
  });
});

describe('encodeListing', () => {
  it('packs entries with and without attributes', () => {
    const b = encodeListing(
      [
        { name: Buffer.from([0xff, 0x41]), ino: 2n ** 33n, attr: { mode: 0o100600 } },
        { name: Buffer.from('d'), ino: 3n, mode: 0o040000 },
      ],
      10n,
      11n,
    );
    assert.equal(b.readUInt32LE(0), 2);
    assert.equal(b.readBigUInt64LE(8), 10n);
    assert.equal(b.readBigUInt64LE(16), 11n);
    assert.equal(b.readBigUInt64LE(24), 2n ** 33n);
    assert.equal(b.readUInt32LE(24 + 16), 8, 'DT_REG');
    assert.equal(b.readUInt8(24 + 22), 1);
    const second = 24 + 24 + ATTR_SIZE + 2;
    assert.equal(b.readUInt32LE(second + 16), 4, 'DT_DIR');
    assert.equal(b.readUInt8(second + 22), 0);
    assert.equal(b.length, second + 24 + 1);
  });

  it("refuses names Linux would not list: empty, over 255 bytes, with '/' or NUL", () => {
    for (const name of [Buffer.alloc(0), Buffer.alloc(256, 0x61), Buffer.from('a/b'), Buffer.from([0x61, 0])]) {
      assert.throws(() => encodeListing([{ name, ino: 1n, mode: 0o100000 }]), (e: unknown) => isStrataError(e));
    }
  });
});

describe('xattrs and statfs', () => {
  it('packs names NUL-terminated and a set with binary values', () => {
    assert.deepEqual(encodeNames([Buffer.from('user.a'), Buffer.from('user.bb')]), Buffer.from('user.a\0user.bb\0'));
    const b = encodeXattrs([[Buffer.from('user.a'), Buffer.from([0, 1, 2])]]);
    assert.equal(b.readUInt32LE(0), 1);
    assert.equal(b.readUInt32LE(4), 6);
    assert.equal(b.readUInt32LE(8), 3);
    assert.equal(b.length, 4 + 8 + 6 + 3);
    assert.throws(() => encodeXattrs([[Buffer.from('user.big'), Buffer.alloc(65537)]]));
  });

  it('lays out fuse_kstatfs', () => {
    const b = encodeStatfs({ blocks: 1n, bfree: 2, bavail: 3, files: 4, ffree: 5, bsize: 512 });
    assert.equal(b.length, STATFS_SIZE);
    assert.deepEqual([0, 8, 16, 24, 32].map((o) => b.readBigUInt64LE(o)), [1n, 2n, 3n, 4n, 5n]);
    assert.deepEqual([40, 44, 48].map((o) => b.readUInt32LE(o)), [512, 255, 512]);
  });
});

describe('mountinfo', () => {
  const text = [
    '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/root rw',
    '40 22 0:40 / /tmp/a\\040b rw,nosuid shared:5 - fuse.strata strata ro,user_id=0',
    '41 40 0:41 / /tmp/a\\040b rw - fuse.strata strata ro',
    '',
  ].join('\n');

  it('unescapes mount points and keeps the device numbers', () => {
    const entries = parseMountinfo(text);
    assert.equal(entries.length, 3);
    assert.deepEqual(entries[1].mountPoint, Buffer.from('/tmp/a b'));
    assert.equal(entries[1].minor, 40);
    assert.equal(entries[1].fsType, 'fuse.strata');
  });

  it('finds the mount on top at a path', () => {
    assert.equal(topMountAt(Buffer.from('/tmp/a b'), text)?.minor, 41);
    assert.equal(topMountAt(Buffer.from('/tmp/none'), text), undefined);
  });
});
