// Test helpers: the smallest images that carry each signature, built byte
// by byte from the formats' specifications (unit tests; the blkid
// differential test feeds the same bytes to blkid).
import { crc32 } from 'node:zlib';
import type { ByteSource } from './byte-source';

export const MIB = 1024 * 1024;

export function memorySource(bytes: Buffer): ByteSource {
  return {
    size: bytes.length,
    async read(offset: number, length: number): Promise<Buffer> {
      if (offset < 0 || length < 0 || offset + length > bytes.length) throw new RangeError(`read ${offset}+${length} past ${bytes.length}`);
      return Buffer.from(bytes.subarray(offset, offset + length));
    },
  };
}

const UUID_BYTES = Buffer.from('0123456789abcdeffedcba9876543210', 'hex');

/** HFS+: "H+" version 4 at 1 KiB, 4 KiB blocks. */
export function hfsPlusImage(): Buffer {
  const d = Buffer.alloc(MIB);
  d.write('H+', 1024, 'latin1');
  d.writeUInt16BE(4, 1026);
  d.writeUInt32BE(4096, 1024 + 0x28);
  d.writeUInt32BE(256, 1024 + 0x2c);
  return d;
}

/** Classic HFS: "BD", 4 KiB allocation blocks, a Pascal-string volume name. */
export function hfsImage(name: string): Buffer {
  const d = Buffer.alloc(MIB);
  d.write('BD', 1024, 'latin1');
  d.writeUInt32BE(4096, 1024 + 0x14);
  d[1024 + 0x24] = name.length;
  d.write(name, 1024 + 0x25, 'latin1');
  return d;
}

/** ISO 9660: a primary volume descriptor at sector 16 and a terminator. */
export function isoImage(volumeId: string): Buffer {
  const d = Buffer.alloc(MIB);
  const pvd = 16 * 2048;
  d[pvd] = 1;
  d.write('CD001', pvd + 1, 'latin1');
  d[pvd + 6] = 1;
  d.write(volumeId.padEnd(32, ' '), pvd + 40, 'latin1');
  d[pvd + 2048] = 255;
  d.write('CD001', pvd + 2048 + 1, 'latin1');
  d[pvd + 2048 + 6] = 1;
  return d;
}

/** UDF: the volume recognition sequence BEA01, NSR02, TEA01 from sector 16. */
export function udfImage(): Buffer {
  const d = Buffer.alloc(MIB);
  ['BEA01', 'NSR02', 'TEA01'].forEach((id, i) => d.write(id, (16 + i) * 2048 + 1, 'latin1'));
  return d;
}

export const LUKS_UUID = '6a1c2a86-0cf1-4c4e-9d6a-2b1f5a5d2f11';

/** A LUKS1 or LUKS2 header (primary, or a LUKS2 secondary one at 16 KiB only). */
export function luksImage(version: 1 | 2, options: { label?: string; secondaryOnly?: boolean } = {}): Buffer {
  const d = Buffer.alloc(4 * MIB);
  const at = options.secondaryOnly ? 0x4000 : 0;
  d.write(options.secondaryOnly ? 'SKUL\xba\xbe' : 'LUKS\xba\xbe', at, 'latin1');
  d.writeUInt16BE(version, at + 6);
  if (version === 1) {
    d.write('aes', at + 8, 'latin1');
    d.write('xts-plain64', at + 40, 'latin1');
    d.write('sha256', at + 72, 'latin1');
    d.writeUInt32BE(4096, at + 104);
    d.writeUInt32BE(64, at + 108);
  } else {
    d.writeBigUInt64BE(16384n, at + 8);
    if (options.label) d.write(options.label, at + 24, 'utf8');
    d.write('sha256', at + 72, 'latin1');
  }
  d.write(LUKS_UUID, at + 168, 'latin1');
  return d;
}

/** An md superblock 1.x at `at` (1.2: 4 KiB) for a RAID1 set named `name`. */
export function mdV1Image(size: number, at: number, name: string): Buffer {
  const d = Buffer.alloc(size);
  d.writeUInt32LE(0xa92b4efc, at);
  d.writeUInt32LE(1, at + 4);
  UUID_BYTES.copy(d, at + 16);
  d.write(name, at + 32, 'latin1');
  d.writeInt32LE(1, at + 72);
  d.writeBigUInt64LE(BigInt(at / 512), at + 144);
  Buffer.from(UUID_BYTES).reverse().copy(d, at + 168);
  return d;
}

/** An md 0.90 superblock (little-endian) in the last 64 KiB-aligned 64 KiB. */
export function mdV090Image(size: number): Buffer {
  const d = Buffer.alloc(size);
  const at = Math.floor(size / 65536) * 65536 - 65536;
  d.writeUInt32LE(0xa92b4efc, at);
  d.writeUInt32LE(0, at + 4);
  d.writeUInt32LE(90, at + 8);
  d.writeUInt32LE(0, at + 12);
  [20, 52, 56, 60].forEach((o, i) => UUID_BYTES.copy(d, at + o, i * 4, i * 4 + 4));
  d.writeUInt32LE(1, at + 28);
  d.writeUInt32LE(Math.floor(at / 1024), at + 32);
  return d;
}

export function squashfsImage(): Buffer {
  const d = Buffer.alloc(64 * 1024);
  d.write('hsqs', 0, 'latin1');
  d.writeUInt16LE(4, 28);
  d.writeUInt16LE(0, 30);
  return d;
}

/** A swap area of the old kind: "SWAP-SPACE" at the end of the first 4 KiB page. */
export function swapV0Image(): Buffer {
  const d = Buffer.alloc(MIB);
  d.write('SWAP-SPACE', 4086, 'latin1');
  return d;
}

/** A ZFS label 0 with 8 uberblocks at 128 KiB. */
export function zfsImage(): Buffer {
  const d = Buffer.alloc(MIB);
  for (let i = 0; i < 8; i++) d.writeBigUInt64LE(0x00bab10cn, 128 * 1024 + i * 1024);
  return d;
}

/** F2FS 1.x superblock with a uuid and a label. */
export function f2fsImage(label: string): Buffer {
  const d = Buffer.alloc(MIB);
  d.writeUInt32LE(0xf2f52010, 1024);
  d.writeUInt16LE(1, 1028);
  d.writeUInt16LE(15, 1030);
  d.writeUInt32LE(12, 1024 + 0x10);
  UUID_BYTES.copy(d, 1024 + 0x6c);
  d.write(label, 1024 + 0x7c, 'utf16le');
  return d;
}

export function magicImage(offset: number, magic: string): Buffer {
  const d = Buffer.alloc(MIB);
  d.write(magic, offset, 'latin1');
  return d;
}

/** exFAT: boot sector with 512-byte sectors, 4 KiB clusters, the root directory at cluster 4 holding a label entry. */
export function exfatImage(label: string): Buffer {
  const d = Buffer.alloc(4 * MIB);
  d.write('EXFAT   ', 3, 'latin1');
  d.writeUInt32LE(2048, 0x58); // cluster heap at 1 MiB
  d.writeUInt32LE(4, 0x60);
  d.writeUInt32LE(0x12345678, 0x64);
  d.writeUInt16LE(0x0100, 0x68); // revision 1.0
  d[0x6c] = 9;
  d[0x6d] = 3;
  const root = MIB + 2 * 4096;
  d[root] = 0x83;
  d[root + 1] = label.length;
  d.write(label, root + 2, 'utf16le');
  return d;
}

/** An MBR with one partition, or a protective MBR with a minimal GPT header (an empty entry array; 'pmbr': its CRC broken). */
export function partitionTableImage(kind: 'dos' | 'gpt' | 'pmbr'): Buffer {
  const d = Buffer.alloc(MIB);
  d[446 + 4] = kind === 'dos' ? 0x83 : 0xee;
  d.writeUInt32LE(1, 446 + 8);
  d.writeUInt32LE(2047, 446 + 12);
  d[510] = 0x55;
  d[511] = 0xaa;
  if (kind !== 'dos') {
    const h = d.subarray(512, 1024);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x10000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(1n, 24);
    h.writeBigUInt64LE(BigInt(d.length / 512 - 1), 32);
    h.writeBigUInt64LE(34n, 40);
    h.writeBigUInt64LE(BigInt(d.length / 512 - 34), 48);
    h.writeBigUInt64LE(2n, 72);
    h.writeUInt32LE(128, 80);
    h.writeUInt32LE(128, 84);
    h.writeUInt32LE(crc32(Buffer.alloc(128 * 128)), 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    if (kind === 'pmbr') h[16] ^= 1;
  }
  return d;
}
