import { BlockGroupFlag, PROFILE_MASK } from './constants';
import { corrupt, need, safeU64, unsupported } from './errors';
import { KEY_SIZE, readKey } from './key';

/** One chunk: a logical range and where its copies lie on the (single) device. */
export interface Chunk {
  logical: number;
  length: number;
  type: bigint;
  /** Physical start of each copy (one for SINGLE, two for DUP). */
  stripes: number[];
}

export const CHUNK_ITEM_SIZE = 48;
const STRIPE_SIZE = 32;
const MAX_CHUNKS = 1 << 20;

const PROFILE_NAMES: [bigint, string][] = [
  [BlockGroupFlag.RAID0, 'RAID0'],
  [BlockGroupFlag.RAID1, 'RAID1'],
  [BlockGroupFlag.RAID10, 'RAID10'],
  [BlockGroupFlag.RAID5, 'RAID5'],
  [BlockGroupFlag.RAID6, 'RAID6'],
  [BlockGroupFlag.RAID1C3, 'RAID1C3'],
  [BlockGroupFlag.RAID1C4, 'RAID1C4'],
];

export function profileName(type: bigint): string {
  if ((type & BlockGroupFlag.DUP) !== 0n) return 'DUP';
  for (const [bit, name] of PROFILE_NAMES) if ((type & bit) !== 0n) return name;
  return 'single';
}

/** Copies a profile keeps of every byte (the kernel's btrfs_bg_type_to_factor for the profiles read here). */
export function profileFactor(type: bigint): number {
  return (type & BlockGroupFlag.DUP) !== 0n ? 2 : 1;
}

/** Parses one btrfs_chunk (at `at` in `buf`, `size` bytes available) keyed at logical `logical`. */
export function parseChunk(buf: Buffer, at: number, size: number, logical: bigint, devid: bigint): Chunk {
  need(buf, at, CHUNK_ITEM_SIZE, 'chunk item');
  const length = buf.readBigUInt64LE(at);
  const type = buf.readBigUInt64LE(at + 24);
  const numStripes = buf.readUInt16LE(at + 44);
  if (length === 0n) throw corrupt(`chunk at ${logical}: zero length`);
  if (numStripes === 0) throw corrupt(`chunk at ${logical}: no stripes`);
  if (CHUNK_ITEM_SIZE + numStripes * STRIPE_SIZE > size) throw corrupt(`chunk at ${logical}: ${numStripes} stripes do not fit its item`);
  need(buf, at, CHUNK_ITEM_SIZE + numStripes * STRIPE_SIZE, 'chunk stripes');
  const profile = type & PROFILE_MASK;
  if (profile !== 0n && profile !== BlockGroupFlag.DUP) {
    throw unsupported(`chunk at ${logical} uses the ${profileName(type)} profile: RAID profiles are not supported`);
  }
  const want = profile === BlockGroupFlag.DUP ? 2 : 1;
  if (numStripes !== want) throw corrupt(`chunk at ${logical}: ${profileName(type)} with ${numStripes} stripes`);
  const stripes: number[] = [];
  for (let i = 0; i < numStripes; i++) {
    const s = at + CHUNK_ITEM_SIZE + i * STRIPE_SIZE;
    const dev = buf.readBigUInt64LE(s);
    if (dev !== devid) throw unsupported(`chunk at ${logical} has a stripe on device ${dev}: multi-device btrfs is not supported`);
    stripes.push(safeU64(buf.readBigUInt64LE(s + 8), 'stripe offset'));
  }
  return { logical: safeU64(logical, 'chunk logical address'), length: safeU64(length, 'chunk length'), type, stripes };
}

/** Logical → physical mapping over the chunks known so far. */
export class ChunkMap {
  private chunks: Chunk[] = [];

  get all(): readonly Chunk[] {
    return this.chunks;
  }

  add(c: Chunk): void {
    if (this.chunks.length >= MAX_CHUNKS) throw corrupt(`more than ${MAX_CHUNKS} chunks`);
    const i = this.indexAfter(c.logical);
    const prev = this.chunks[i - 1];
    if (prev && prev.logical === c.logical) {
      this.chunks[i - 1] = c;
      return;
    }
    if ((prev && prev.logical + prev.length > c.logical) || (this.chunks[i] && c.logical + c.length > this.chunks[i].logical)) {
      throw corrupt(`chunk at ${c.logical} overlaps another`);
    }
    this.chunks.splice(i, 0, c);
  }

  /** Index of the first chunk starting after `logical`. */
  private indexAfter(logical: number): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.chunks[mid].logical <= logical) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The chunk holding `logical`, or EUCLEAN. */
  find(logical: number): Chunk {
    const c = this.chunks[this.indexAfter(logical) - 1];
    if (!c || logical >= c.logical + c.length) throw corrupt(`logical address ${logical} is in no chunk`);
    return c;
  }

  /**
   * The physical offsets of every copy of [logical, logical+length), and how
   * many bytes of the range the chunk covers from there.
   */
  map(logical: number, length: number): { copies: number[]; length: number } {
    const c = this.find(logical);
    const within = logical - c.logical;
    return { copies: c.stripes.map((s) => s + within), length: Math.min(length, c.length - within) };
  }
}

/** The bootstrap chunks in the superblock's sys_chunk_array: (key, chunk) pairs. */
export function parseSysChunkArray(array: Buffer, devid: bigint): Chunk[] {
  const out: Chunk[] = [];
  let at = 0;
  for (let n = 0; at < array.length; n++) {
    if (n > 1024) throw corrupt('sys_chunk_array: too many entries');
    need(array, at, KEY_SIZE + CHUNK_ITEM_SIZE, 'sys_chunk_array entry');
    const k = readKey(array, at);
    if (k.type !== 228) throw corrupt(`sys_chunk_array: key type ${k.type} is not a chunk`);
    at += KEY_SIZE;
    const numStripes = array.readUInt16LE(at + 44);
    const size = CHUNK_ITEM_SIZE + numStripes * STRIPE_SIZE;
    need(array, at, size, 'sys_chunk_array chunk');
    out.push(parseChunk(array, at, size, k.offset, devid));
    at += size;
  }
  return out;
}
