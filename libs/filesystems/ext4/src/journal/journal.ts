/**
 * Opens an internal ext4 journal: its superblock, then either recovery
 * (what a mount of an image needing recovery does) or only the scan that
 * finds where the log ends, and what a later look at the journal compares
 * with to tell whether the guest writing it has moved on.
 */
import { refused, unsupported } from '../corruption';
import type { BlockRun } from '../file-blocks';
import { BlockType, nextTid, parseHeader } from './block-header';
import { startsFastCommit } from './fast-commit';
import { JournalFile, journalFile } from './journal-file';
import { JSB_SIZE, JournalSuperblock, parseJournalSuperblock } from './journal-superblock';
import { RecoveryContext, recoverLog, scanLog } from './recovery';
import { ReplayMap } from './replay-map';

/** What the reader made of the journal. */
export interface JournalState {
  /** The committed transactions were applied to this view (the image needed recovery and `journal: 'replay'`). */
  replayed: boolean;
  /** Transactions applied. */
  transactions: number;
  /** Filesystem blocks whose content comes from the journal. */
  blocks: number;
  /** The oldest transaction in the log (s_sequence). */
  firstSequence: number;
  /** The id the guest's next transaction carries: the first one the log does not hold. */
  nextSequence: number;
  /** Log block where that transaction starts (after the last committed one). */
  headBlock: number;
}

export interface JournalSetup {
  blockSize: number;
  /** Filesystem blocks the image holds. */
  deviceBlocks: number;
  /** The journal inode's size in blocks. */
  fileBlocks: number;
  /** Maps log blocks [0, n) of the journal inode, as it is on disk. */
  map: (n: number) => Promise<BlockRun[]>;
  /** Reads one filesystem block straight from the source. */
  readBlock: (pblk: number) => Promise<Buffer>;
  /** Apply the committed transactions; otherwise only find where the log ends. */
  recover: boolean;
}

export interface OpenJournal {
  state: JournalState;
  replay: ReplayMap | undefined;
  /** Without recovery: a transaction whose commit block fails its checksum (recovery refuses such a journal). */
  failedCommit: number | undefined;
  superblock: JournalSuperblock;
  /** Reads the journal superblock and the block the log continues at, uncached; true when the guest moved on. */
  headChanged(): Promise<boolean>;
}

export async function openJournal(setup: JournalSetup): Promise<OpenJournal> {
  if (setup.fileBlocks < 1) throw refused('journal inode', 'the journal is empty');
  const first = journalFile(await setup.map(1), 1, setup.readBlock);
  const jsb = parseJournalSuperblock(await first.read(0), setup.blockSize, setup.fileBlocks);
  if (jsb.totalLen > setup.deviceBlocks) throw refused('journal superblock', `a journal of ${jsb.totalLen} blocks in a ${setup.deviceBlocks}-block image`);
  const file = journalFile(await setup.map(jsb.totalLen), jsb.totalLen, setup.readBlock);
  const ctx: RecoveryContext = { jsb, file, deviceBlocks: setup.deviceBlocks };

  let state: JournalState;
  let watch: { block: number; sequence: number };
  let replay: ReplayMap | undefined;
  let failedCommit: number | undefined;
  if (jsb.start === 0) {
    // An empty log: the next transaction is s_sequence + 1 at s_head (ext4 keeps recording where it stopped).
    const head = jsb.head >= jsb.first && jsb.head < jsb.last ? jsb.head : jsb.first;
    state = { replayed: false, transactions: 0, blocks: 0, firstSequence: jsb.sequence, nextSequence: nextTid(jsb.sequence), headBlock: head };
    watch = { block: head, sequence: state.nextSequence };
  } else if (setup.recover) {
    const { scan, replay: entries } = await recoverLog(ctx);
    if (scan.failedCommit !== undefined) {
      // jbd2_journal_load refuses the journal after replaying the transactions before it (EFSCORRUPTED).
      throw refused('journal', `transaction ${scan.failedCommit} is corrupt: its commit block fails its checksum`);
    }
    if (jsb.fastCommit && jsb.fcFirst < jsb.totalLen && startsFastCommit(await file.read(jsb.fcFirst), scan.endTransaction)) {
      throw unsupported(`journal with fast commits to replay (fast_commit feature, transaction ${scan.endTransaction})`);
    }
    replay = new ReplayMap(entries, file, jsb);
    state = {
      replayed: true,
      transactions: (scan.endTransaction - scan.startTransaction) >>> 0,
      blocks: entries.size,
      firstSequence: scan.startTransaction,
      nextSequence: scan.endTransaction,
      headBlock: scan.headBlock,
    };
    watch = { block: scan.stopBlock, sequence: scan.stopSequence };
  } else {
    const scan = await scanLog(ctx);
    failedCommit = scan.failedCommit;
    state = {
      replayed: false,
      transactions: 0,
      blocks: 0,
      firstSequence: scan.startTransaction,
      nextSequence: scan.endTransaction,
      headBlock: scan.headBlock,
    };
    watch = { block: scan.stopBlock, sequence: scan.stopSequence };
  }
  return { state, replay, failedCommit, superblock: jsb, headChanged: () => headChanged(file, jsb, watch) };
}

const HEADER_TYPES = new Set<number>([BlockType.DESCRIPTOR, BlockType.COMMIT, BlockType.REVOKE]);

async function headChanged(file: JournalFile, jsb: JournalSuperblock, watch: { block: number; sequence: number }): Promise<boolean> {
  const now = await file.read(0);
  if (!now.subarray(0, JSB_SIZE).equals(jsb.raw)) return true;
  const block = await file.read(watch.block);
  const header = parseHeader(block);
  return header !== undefined && header.sequence === watch.sequence && HEADER_TYPES.has(header.blockType);
}

