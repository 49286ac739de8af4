/**
 * The outcome of a replay as the block reader uses it: which filesystem
 * blocks are replaced and, for each, the log block holding its last
 * committed copy. Copies are read from the log when asked for, not kept in
 * memory; a copy whose journal checksum no longer matches (the guest of a
 * running VM reused that part of the log after this reader opened) is EIO
 * rather than a silently wrong block.
 */
import type { BlockOverlay } from '../block-reader';
import { refused } from '../corruption';
import { JBD2_MAGIC } from './block-header';
import { dataBlockChecksum } from './checksums';
import type { JournalFile } from './journal-file';
import type { JournalSuperblock } from './journal-superblock';
import type { ReplayEntry } from './recovery';

export class ReplayMap implements BlockOverlay {
  readonly blocks: readonly number[];

  constructor(
    private readonly entries: ReadonlyMap<number, ReplayEntry>,
    private readonly file: JournalFile,
    private readonly jsb: JournalSuperblock,
  ) {
    this.blocks = [...entries.keys()].sort((a, b) => a - b);
  }

  has(block: number): boolean {
    return this.entries.has(block);
  }

  async read(block: number): Promise<Buffer> {
    const e = this.entries.get(block);
    if (!e) throw refused('journal replay', `block ${block} is not replayed`);
    const data = Buffer.from(await this.file.read(e.logBlock));
    if (e.checksum !== undefined) {
      let sum = dataBlockChecksum(this.jsb.csumSeed, e.sequence, data);
      if (!this.jsb.csumV3) sum &= 0xffff;
      if (sum !== e.checksum) {
        throw refused(`journal block ${e.logBlock}`, `the logged copy of block ${block} changed since the replay (the log was reused: reopen the image)`);
      }
    }
    if (e.escape) data.writeUInt32BE(JBD2_MAGIC, 0);
    return data;
  }
}
