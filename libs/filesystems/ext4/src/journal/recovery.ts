/**
 * Journal recovery as jbd2's recovery.c does it (do_one_pass), in its three
 * passes over the log from s_start:
 *
 * SCAN finds the end of the log: the first block that is not a descriptor,
 * commit or revoke block of the expected transaction, or the first commit
 * whose checksum fails (with async_commit the scan goes on, but that
 * transaction still ends the replay). REVOKE collects the revoke records of
 * the committed transactions, each with the latest transaction revoking it.
 * REPLAY applies, transaction by transaction, every logged block that no
 * later-or-equal revoke cancels; here "applying" only records which log
 * block now supplies a filesystem block, so nothing is written and the
 * memory used is a few numbers per logged block.
 *
 * The kernel's answers are kept, including its quirks (a `break` inside its
 * switch only ends that block's processing; a transaction id of 0 reads as
 * "unset"). What it does not have: every pass stops with EIO once it has
 * walked more blocks than the log holds (a log that runs onto itself), and
 * a tag naming a block past the end of the image is refused.
 */
import { Errno, StrataError } from '@strata/errors';
import { refused } from '../corruption';
import { BlockType, nextTid, parseHeader, tidGeq, tidGt } from './block-header';
import { crc32Be, dataBlockChecksum, verifyBlockTail } from './checksums';
import { CRC32_CHKSUM, CRC32_CHKSUM_SIZE, commitChecksumOk, parseCommit, partialCommitChecksumOk } from './commit-block';
import { TagFlag, parseTags } from './descriptor-block';
import type { JournalFile } from './journal-file';
import type { JournalSuperblock } from './journal-superblock';
import { parseRevokes, revokeCount } from './revoke-block';

/** Where a replayed filesystem block's content is in the log. */
export interface ReplayEntry {
  logBlock: number;
  /** JBD2_FLAG_ESCAPE: the first 4 bytes are the jbd2 magic, logged as zeros. */
  escape: boolean;
  /** Transaction the copy belongs to. */
  sequence: number;
  /** The tag's checksum of the logged block (csum v2: 16 bits), to notice a log block reused after open. */
  checksum: number | undefined;
}

export interface RecoveryContext {
  jsb: JournalSuperblock;
  file: JournalFile;
  /** Filesystem blocks the image holds: a tag naming one past them cannot be replayed. */
  deviceBlocks: number;
}

export interface ScanResult {
  /** First transaction in the log (s_sequence). */
  startTransaction: number;
  /** First transaction not replayed: the log ends before it. */
  endTransaction: number;
  /** Log block after the last accepted commit: where the next transaction starts. */
  headBlock: number;
  /** The log block at which the scan stopped and the transaction it expected there. */
  stopBlock: number;
  stopSequence: number;
  /** A transaction whose commit block failed its checksum (not replayed). */
  failedCommit: number | undefined;
  /** Every filesystem block a descriptor of the scanned log names (revokes of others cannot matter). */
  tagged: Set<number>;
}

type Pass = 'scan' | 'revoke' | 'replay';

interface PassState {
  ctx: RecoveryContext;
  pass: Pass;
  scan: ScanResult;
  revoked: Map<number, number>;
  replay: Map<number, ReplayEntry>;
}

const EFSBADCRC = (what: string, detail: string): StrataError => refused(what, `${detail} (EBADMSG: bad checksum)`);

function tagBlock(ctx: RecoveryContext, block: number, logBlock: number): number {
  if (!Number.isSafeInteger(block) || block >= ctx.deviceBlocks) {
    throw refused(`journal descriptor before log block ${logBlock}`, `tag names block ${block}, past the end of the filesystem image (${ctx.deviceBlocks} blocks)`);
  }
  return block;
}

/** jbd2_journal_test_revoke: revoked by a transaction at or after `sequence`. */
function isRevoked(revoked: Map<number, number>, block: number, sequence: number): boolean {
  const by = revoked.get(block);
  return by !== undefined && !tidGt(sequence, by);
}

async function onePass(s: PassState): Promise<void> {
  const { jsb, file } = s.ctx;
  const { pass, scan } = s;
  let next = jsb.sequence;
  let pos = jsb.start;
  let head = pos;
  let crc = 0xffffffff;
  let needCheckCommitTime = false;
  let lastCommitTime = 0n;
  let replayError: StrataError | undefined;
  let walked = 0;
  const logLength = jsb.last - jsb.first;
  const advance = (n: number): void => {
    pos += n;
    // The kernel's wrap(): one subtraction; a position still past the log then fails its read.
    if (pos >= jsb.last) pos -= logLength;
    walked += n;
    if (walked > logLength) {
      throw refused('journal', `the log from block ${jsb.start} runs over more than the ${logLength} blocks of the journal (it wraps onto itself)`);
    }
  };

  // One block per iteration (plus the blocks a descriptor describes); `walked` bounds the loop.
  let at = pos;
  scanning: for (;;) {
    if (pass !== 'scan' && tidGeq(next, scan.endTransaction)) break;
    at = pos;
    const block = await file.read(at);
    advance(1);
    const header = parseHeader(block);
    if (!header || header.sequence !== next) break;
    switch (header.blockType) {
      case BlockType.DESCRIPTOR: {
        if (jsb.csumV2or3 && !verifyBlockTail(jsb.csumSeed, block)) {
          // PASS_SCAN can meet stale blocks of a lazily initialised journal: judged at the commit block.
          if (pass !== 'scan') throw EFSBADCRC(`journal descriptor block ${at}`, `transaction ${next}`);
          needCheckCommitTime = true;
        }
        const tags = parseTags(jsb, block);
        if (pass === 'scan') for (const t of tags) scan.tagged.add(t.block);
        if (pass !== 'replay') {
          if (pass === 'scan' && jsb.checksumV1 && scan.endTransaction === 0) {
            crc = crc32Be(crc, block);
            for (let i = 0; i < tags.length; i++) {
              const io = pos;
              advance(1);
              let data: Buffer;
              try {
                data = await file.read(io);
              } catch (err) {
                // calc_chksums failing makes the kernel leave the switch: the walk goes on from here.
                if (err instanceof StrataError) continue scanning;
                throw err;
              }
              crc = crc32Be(crc, data);
            }
            continue;
          }
          advance(tags.length);
          continue;
        }
        for (const tag of tags) {
          const io = pos;
          advance(1);
          try {
            file.physical(io);
          } catch (err) {
            // An unreadable log block: the kernel replays what it can and fails at the end.
            if (!(err instanceof StrataError)) throw err;
            replayError ??= err;
            continue;
          }
          if (isRevoked(s.revoked, tag.block, next)) continue;
          if (tag.checksum !== undefined) {
            const data = await file.read(io);
            let sum = dataBlockChecksum(jsb.csumSeed, next, data);
            if (!jsb.csumV3) sum &= 0xffff;
            if (sum !== tag.checksum) {
              replayError ??= EFSBADCRC(`journal data block ${io}`, `copy of block ${tag.block} in transaction ${next}`);
              continue;
            }
          }
          s.replay.set(tagBlock(s.ctx, tag.block, at), { logBlock: io, escape: (tag.flags & TagFlag.ESCAPE) !== 0, sequence: next, checksum: tag.checksum });
        }
        continue;
      }

      case BlockType.COMMIT: {
        if (pass !== 'scan') {
          next = nextTid(next);
          continue;
        }
        const commit = parseCommit(block);
        if (needCheckCommitTime) {
          // A descriptor or revoke block of this transaction failed its checksum: corruption when the
          // commit is not older than the last one, else a stale block ending the log.
          if (commit.commitSec >= lastCommitTime) throw EFSBADCRC('journal', `transaction ${next} has a block with an invalid checksum`);
          break scanning;
        }
        let good: boolean;
        if (jsb.checksumV1) {
          if (scan.endTransaction !== 0) {
            scan.failedCommit = scan.endTransaction;
            continue;
          }
          good =
            (crc === commit.chksum && commit.chksumType === CRC32_CHKSUM && commit.chksumSize === CRC32_CHKSUM_SIZE) ||
            (commit.chksumType === 0 && commit.chksumSize === 0 && commit.chksum === 0);
          if (good) crc = 0xffffffff;
        } else {
          good = !jsb.csumV2or3 || commitChecksumOk(jsb.csumSeed, block) || partialCommitChecksumOk(jsb.csumSeed, block);
        }
        if (!good) {
          if (commit.commitSec < lastCommitTime) break scanning;
          scan.endTransaction = next;
          scan.headBlock = head;
          if (!jsb.asyncCommit) {
            scan.failedCommit = next;
            continue;
          }
        }
        lastCommitTime = commit.commitSec;
        head = pos;
        next = nextTid(next);
        continue;
      }

      case BlockType.REVOKE: {
        if (pass === 'replay') continue;
        if (pass === 'scan') {
          if (jsb.csumV2or3 && !verifyBlockTail(jsb.csumSeed, block)) needCheckCommitTime = true;
          revokeCount(jsb, block, String(at));
          continue;
        }
        for (const b of parseRevokes(jsb, block, String(at))) {
          // Only blocks the log holds copies of can be affected: bounds the table by the log's size.
          if (!scan.tagged.has(b)) continue;
          const by = s.revoked.get(b);
          if (by === undefined || tidGt(next, by)) s.revoked.set(b, next);
        }
        continue;
      }

      default:
        break scanning;
    }
  }

  if (pass === 'scan') {
    scan.stopBlock = at;
    scan.stopSequence = next;
    // As in the kernel, 0 reads as "not set yet".
    if (scan.endTransaction === 0) scan.endTransaction = next;
    if (scan.headBlock === 0) scan.headBlock = head;
  } else if (scan.endTransaction !== next) {
    throw new StrataError(Errno.EIO, `ext4: journal recovery pass ${pass} ended at transaction ${next}, expected ${scan.endTransaction}`);
  }
  if (replayError) throw replayError;
}

export interface RecoveryResult {
  scan: ScanResult;
  /** Filesystem block → its last committed copy in the log. */
  replay: Map<number, ReplayEntry>;
}

function newScan(jsb: JournalSuperblock): ScanResult {
  return {
    startTransaction: jsb.sequence,
    endTransaction: 0,
    headBlock: 0,
    stopBlock: jsb.start,
    stopSequence: jsb.sequence,
    failedCommit: undefined,
    tagged: new Set(),
  };
}

/** The SCAN pass alone (jbd2_journal_skip_recovery's view): where the log ends. The log must be non-empty. */
export async function scanLog(ctx: RecoveryContext): Promise<ScanResult> {
  const state: PassState = { ctx, pass: 'scan', scan: newScan(ctx.jsb), revoked: new Map(), replay: new Map() };
  await onePass(state);
  return state.scan;
}

/** All three passes (jbd2_journal_recover). The log must be non-empty (s_start != 0). */
export async function recoverLog(ctx: RecoveryContext): Promise<RecoveryResult> {
  const state: PassState = { ctx, pass: 'scan', scan: newScan(ctx.jsb), revoked: new Map(), replay: new Map() };
  await onePass(state);
  state.pass = 'revoke';
  await onePass(state);
  state.pass = 'replay';
  await onePass(state);
  return { scan: state.scan, replay: state.replay };
}
