import { Errno, StrataError } from '@strata/errors';
import { BTree } from './btree';
import { KeyType, ObjectId } from './constants';
import { corrupt } from './errors';
import { U64_MAX, key } from './key';
import { parseRootItem } from './root-item';
import type { Volume } from './volume';

/**
 * Data checksums from the csum tree: EXTENT_CSUM items keyed by the logical
 * address of their first sector, each holding one checksum per sector.
 * A sector without a checksum is not verified (nodatasum data, prealloc).
 */
export class DataChecksums {
  private tree: Promise<BTree | undefined> | undefined;

  constructor(private readonly vol: Volume) {}

  private csumTree(): Promise<BTree | undefined> {
    this.tree ??= (async () => {
      const it = await this.vol.rootTree.lastAtOrBefore(key(ObjectId.CSUM_TREE, KeyType.ROOT_ITEM, U64_MAX), key(ObjectId.CSUM_TREE, KeyType.ROOT_ITEM, 0n));
      if (!it) return undefined;
      const r = parseRootItem(it.data);
      return new BTree(this.vol.reader, { bytenr: r.bytenr, level: r.level, generation: r.generation, name: 'csum tree' });
    })();
    this.tree.catch(() => (this.tree = undefined));
    return this.tree;
  }

  /**
   * Verifies `data`, the sectors starting at logical `logical` (sector
   * aligned): EIO naming the first sector whose checksum differs, as the
   * kernel's read answers.
   */
  async verify(logical: number, data: Buffer, what: string): Promise<void> {
    const sector = this.vol.sb.sectorsize;
    const sum = this.vol.sb.checksummer;
    const tree = await this.csumTree();
    if (!tree || data.length === 0) return;
    const end = logical + data.length;
    const floor = key(ObjectId.EXTENT_CSUM, KeyType.EXTENT_CSUM, 0n);
    const first = await tree.lastAtOrBefore(key(ObjectId.EXTENT_CSUM, KeyType.EXTENT_CSUM, BigInt(logical)), floor);
    let items = 0;
    for await (const it of tree.range(first ? first.key : floor, key(ObjectId.EXTENT_CSUM, KeyType.EXTENT_CSUM, BigInt(end - 1)))) {
      if (++items > 1 << 20) throw corrupt('csum tree: too many items for one read');
      if (it.key.type !== KeyType.EXTENT_CSUM) continue;
      const start = Number(it.key.offset);
      const count = Math.floor(it.data.length / sum.size);
      for (let i = 0; i < count; i++) {
        const at = start + i * sector;
        if (at < logical) continue;
        if (at >= end) break;
        const got = sum.compute(data, at - logical, at - logical + sector);
        if (!got.equals(it.data.subarray(i * sum.size, (i + 1) * sum.size))) {
          throw new StrataError(Errno.EIO, `btrfs: ${what}: data checksum mismatch at logical ${at}`);
        }
      }
    }
  }
}
