import { Errno, StrataError, isStrataError } from '@strata/errors';
import { readExactly, type ByteSource } from '@strata/filesystem';
import { BlockReader } from './block-reader';
import { BTree } from './btree';
import { ChunkMap, parseChunk, parseSysChunkArray } from './chunk-map';
import { INCOMPAT_NAMES, INCOMPAT_SUPPORTED, KeyType, ObjectId, SUPER_INFO_SIZE, SUPER_MIRROR_OFFSETS } from './constants';
import { checksummerFor } from './checksum';
import { corrupt, unsupported } from './errors';
import { U64_MAX, key } from './key';
import { parseSuperblock, type Superblock } from './superblock';

/** The device as the chunk tree's DEV_ITEM records it. */
export interface DeviceInfo {
  devid: bigint;
  totalBytes: bigint;
  bytesUsed: bigint;
}

/** What every later read needs: the superblock, the chunk map, a block reader and the root tree. */
export interface Volume {
  sb: Superblock;
  /** Superblock copies that were unusable (the primary first), with why. */
  superblockProblems: string[];
  chunks: ChunkMap;
  reader: BlockReader;
  rootTree: BTree;
  device: DeviceInfo;
}

/**
 * The superblock a mount uses: the primary at 64 KiB. When the primary is
 * unusable (bad checksum, torn write) the newest valid mirror is used and the
 * problem is reported; the kernel would refuse such a mount (btrfs rescue
 * super-recover repairs it from the same mirrors).
 */
async function readSuperblock(source: ByteSource): Promise<{ sb: Superblock; problems: string[] }> {
  const problems: string[] = [];
  let best: Superblock | undefined;
  for (const [i, offset] of SUPER_MIRROR_OFFSETS.entries()) {
    if (offset + SUPER_INFO_SIZE > source.size) break;
    try {
      const buf = await source.read(offset, SUPER_INFO_SIZE);
      const sb = parseSuperblock(buf, offset, await checksummerFor(buf.length >= 198 ? buf.readUInt16LE(196) : 0));
      if (i === 0) return { sb, problems };
      if (!best || sb.generation > best.generation) best = sb;
    } catch (err) {
      if (!isStrataError(err)) throw err;
      if (err.errno === Errno.EOPNOTSUPP) throw err;
      if (i === 0 && err.message.includes('bad magic')) throw err;
      problems.push(err.message);
    }
  }
  if (!best) throw new StrataError(Errno.EINVAL, problems[0] ?? 'btrfs: no valid superblock');
  return { sb: best, problems };
}

function checkFeatures(sb: Superblock): void {
  const unknown = sb.incompatFlags & ~INCOMPAT_SUPPORTED;
  if (unknown !== 0n) {
    const named = INCOMPAT_NAMES.filter(([bit]) => (unknown & bit) !== 0n).map(([, n]) => n);
    throw unsupported(`incompatible feature ${named.length ? named.join(', ') : `0x${unknown.toString(16)}`} is not supported`);
  }
  if (sb.numDevices !== 1n) throw unsupported(`multi-device btrfs (${sb.numDevices} devices) is not supported`);
}

export async function openVolume(source: ByteSource, cacheBytes: number): Promise<Volume> {
  const { sb, problems } = await readSuperblock(source);
  checkFeatures(sb);
  const devid = sb.devItem.readBigUInt64LE(0);
  const chunks = new ChunkMap();
  for (const c of parseSysChunkArray(sb.sysChunkArray, devid)) chunks.add(c);
  const reader = new BlockReader(source, chunks, sb.nodesize, sb.metadataUuid, sb.checksummer, cacheBytes);
  const chunkTree = new BTree(reader, { bytenr: sb.chunkRoot, level: sb.chunkRootLevel, generation: sb.chunkRootGeneration, name: 'chunk tree' });
  let device: DeviceInfo | undefined;
  let devices = 0;
  for await (const it of chunkTree.range(key(ObjectId.DEV_ITEMS, KeyType.DEV_ITEM, 0n), key(ObjectId.DEV_ITEMS, KeyType.DEV_ITEM, U64_MAX))) {
    devices++;
    if (it.data.length < 24) throw corrupt('dev item too short');
    device = { devid: it.data.readBigUInt64LE(0), totalBytes: it.data.readBigUInt64LE(8), bytesUsed: it.data.readBigUInt64LE(16) };
  }
  if (devices > 1) throw unsupported(`multi-device btrfs (${devices} devices) is not supported`);
  if (!device) throw corrupt('chunk tree has no device item');
  if (device.devid !== devid) throw corrupt(`superblock device ${devid} is not the chunk tree's device ${device.devid}`);
  for await (const it of chunkTree.range(key(ObjectId.FIRST_CHUNK_TREE, KeyType.CHUNK_ITEM, 0n), key(ObjectId.FIRST_CHUNK_TREE, KeyType.CHUNK_ITEM, U64_MAX))) {
    chunks.add(parseChunk(it.data, 0, it.data.length, it.key.offset, devid));
  }
  const rootTree = new BTree(reader, { bytenr: sb.root, level: sb.rootLevel, generation: sb.generation, name: 'root tree' });
  return { sb, superblockProblems: problems, chunks, reader, rootTree, device };
}

/**
 * Reads `length` data bytes at logical `logical`: copy `preferred` first
 * (0 = the first stripe), the others when it cannot be read.
 */
export async function readLogical(vol: Volume, source: ByteSource, logical: number, length: number, preferred = 0): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let done = 0, guard = 0; done < length; guard++) {
    if (guard > 1 << 16) throw corrupt('data read spans too many chunks');
    const { copies, length: n } = vol.chunks.map(logical + done, length - done);
    let got: Buffer | undefined;
    let last: unknown;
    const order = copies.map((_, i) => (i + preferred) % copies.length);
    for (const physical of order.map((i) => copies[i])) {
      try {
        got = await readExactly(source, physical, n, `data at logical ${logical + done}`);
        break;
      } catch (err) {
        last = err;
      }
    }
    if (!got) throw last;
    parts.push(got);
    done += n;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}
