import { LRUCache } from 'lru-cache';
import { readExactly, type ByteSource } from '@strata/filesystem';
import { isStrataError, type StrataError } from '@strata/errors';
import { checksumMatches, type Checksummer } from './checksum';
import { CSUM_SIZE } from './constants';
import type { ChunkMap } from './chunk-map';
import { corrupt, ioError, safeU64 } from './errors';
import { compareKeys, keyText, type Key } from './key';
import { TreeBlock } from './tree-block';

/** What the parent pointer promises about a child block (the kernel checks all three). */
export interface BlockExpectation {
  level: number;
  generation?: bigint;
  firstKey?: Key;
}

/**
 * Reads tree blocks by logical address: maps through the chunks, verifies
 * the checksum and header of the first copy, and falls back to the next
 * copy (DUP) as the kernel's read_extent_buffer does. Verified blocks are
 * kept in a bounded LRU.
 */
export class BlockReader {
  private readonly cache: LRUCache<number, TreeBlock>;
  private readonly inflight = new Map<number, Promise<TreeBlock>>();
  /** Blocks found bad in one copy and read from another (for the log). */
  onMirrorFallback?: (bytenr: number, reason: string) => void;

  constructor(
    private readonly source: ByteSource,
    readonly chunks: ChunkMap,
    private readonly nodesize: number,
    private readonly fsid: Buffer,
    private readonly sum: Checksummer,
    cacheBytes: number,
  ) {
    this.cache = new LRUCache<number, TreeBlock>({ maxSize: Math.max(cacheBytes, nodesize * 16), sizeCalculation: (b) => b.data.length });
  }

  async read(bytenr: bigint, expect: BlockExpectation): Promise<TreeBlock> {
    const at = safeU64(bytenr, 'tree block address');
    let block = this.cache.get(at);
    if (!block) {
      let p = this.inflight.get(at);
      if (!p) {
        p = this.load(at, bytenr).finally(() => this.inflight.delete(at));
        this.inflight.set(at, p);
      }
      block = await p;
    }
    this.check(block, expect);
    return block;
  }

  private check(block: TreeBlock, expect: BlockExpectation): void {
    if (block.level !== expect.level) throw corrupt(`tree block ${block.bytenr}: level ${block.level}, its parent expects ${expect.level}`);
    if (expect.generation !== undefined && block.generation !== expect.generation) {
      throw ioError(`tree block ${block.bytenr}: parent transid verify failed (wanted ${expect.generation}, found ${block.generation})`);
    }
    if (expect.firstKey && block.count > 0 && compareKeys(block.keyAt(0), expect.firstKey) !== 0) {
      throw corrupt(`tree block ${block.bytenr}: first key ${keyText(block.keyAt(0))}, its parent says ${keyText(expect.firstKey)}`);
    }
  }

  private async load(at: number, bytenr: bigint): Promise<TreeBlock> {
    if (at % 4096 !== 0 && at % this.nodesize !== 0) throw corrupt(`tree block address ${at} is not aligned`);
    const { copies, length } = this.chunks.map(at, this.nodesize);
    if (length < this.nodesize) throw corrupt(`tree block ${at} crosses the end of its chunk`);
    let last: StrataError | undefined;
    for (const [i, physical] of copies.entries()) {
      try {
        const data = await readExactly(this.source, physical, this.nodesize, `tree block ${at}`);
        if (!checksumMatches(this.sum, data.subarray(0, CSUM_SIZE), data, CSUM_SIZE, data.length)) {
          throw ioError(`tree block ${at} (copy ${i + 1}): ${this.sum.name} checksum mismatch`);
        }
        const block = TreeBlock.parse(data, bytenr, this.fsid);
        if (last) this.onMirrorFallback?.(at, last.message);
        this.cache.set(at, block);
        return block;
      } catch (err) {
        if (!isStrataError(err)) throw err;
        last = err;
      }
    }
    throw last ?? ioError(`tree block ${at}: no copy`);
  }
}
