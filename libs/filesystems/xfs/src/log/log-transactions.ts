import { corrupt } from '../errors';
import type { LogRecord } from './log-records';

/** A logged item: its regions, the first being its format structure (type in the first two bytes). */
export interface LogItem {
  regions: Buffer[];
  total: number;
}

export interface Transaction {
  lsn: bigint;
  items: LogItem[];
}

const START_TRANS = 0x01;
const COMMIT_TRANS = 0x02;
const CONTINUE_TRANS = 0x04;
const WAS_CONT_TRANS = 0x08;
const END_TRANS = 0x10;
const UNMOUNT_TRANS = 0x20;
const CLIENT_TRANSACTION = 0x69;
const CLIENT_LOG = 0xaa;
const TRANS_HEADER_MAGIC = 0x5452414e;
const TRANS_HEADER_SIZE = 16;
const MAX_REGIONS_IN_ITEM = (64 * 1024) / 128 / 2 + 2 + 8;

interface Open {
  lsn: bigint;
  header: Buffer;
  items: LogItem[];
}

/**
 * Reassembles the committed transactions from the records' operations
 * (xlog_recover_process_data), one record at a time: start, regions (split
 * ones continued across records), commit. Transactions without a commit
 * record are dropped, as the kernel drops them.
 */
export class TransactionAssembler {
  private readonly open = new Map<number, Open>();
  readonly committed: Transaction[] = [];

  add(rec: LogRecord): void {
    const { open } = this;
    const out = this.committed;
    const what = `log record at block ${rec.block}`;
    const d = rec.data;
    let ops = 0;
    let pos = 0;
    while (pos < d.length && ops < rec.numOps) {
      if (pos + 12 > d.length) throw corrupt(what, 'operation header overruns the record');
      const tid = d.readUInt32BE(pos);
      const len = d.readUInt32BE(pos + 4);
      const client = d[pos + 8];
      let flags = d[pos + 9];
      pos += 12;
      if (client !== CLIENT_TRANSACTION && client !== CLIENT_LOG) throw corrupt(what, `operation client 0x${client.toString(16)}`);
      if (pos + len > d.length) throw corrupt(what, `operation of ${len} bytes overruns the record`);
      const body = d.subarray(pos, pos + len);
      pos += len;
      ops++;
      const trans = open.get(tid);
      if (!trans) {
        if (flags & START_TRANS) open.set(tid, { lsn: rec.lsn, header: Buffer.alloc(0), items: [] });
        continue;
      }
      flags &= ~END_TRANS;
      if (flags & WAS_CONT_TRANS) flags &= ~CONTINUE_TRANS;
      switch (flags) {
        case 0:
        case CONTINUE_TRANS:
          addRegion(trans, body, what);
          break;
        case WAS_CONT_TRANS:
          continueRegion(trans, body, what);
          break;
        case COMMIT_TRANS:
          out.push({ lsn: trans.lsn, items: trans.items });
          open.delete(tid);
          break;
        case UNMOUNT_TRANS:
          open.delete(tid);
          break;
        default:
          throw corrupt(what, `operation flags 0x${flags.toString(16)}`);
      }
    }
  }
}

export function committedTransactions(records: readonly LogRecord[]): Transaction[] {
  const assembler = new TransactionAssembler();
  for (const rec of records) assembler.add(rec);
  return assembler.committed;
}

function addRegion(trans: Open, body: Buffer, what: string): void {
  if (body.length === 0) return;
  if (trans.header.length < TRANS_HEADER_SIZE && trans.items.length === 0) {
    // The transaction header comes first, possibly split.
    if (trans.header.length === 0 && body.readUInt32LE(0) !== TRANS_HEADER_MAGIC) throw corrupt(what, 'bad transaction header magic');
    if (trans.header.length + body.length > TRANS_HEADER_SIZE) throw corrupt(what, 'bad transaction header length');
    trans.header = Buffer.concat([trans.header, body]);
    return;
  }
  let item = trans.items[trans.items.length - 1];
  if (!item || (item.total !== 0 && item.regions.length === item.total)) {
    item = { regions: [], total: 0 };
    trans.items.push(item);
  }
  if (item.total === 0) {
    if (body.length < 4) throw corrupt(what, 'item format too short');
    const total = body.readUInt16LE(2);
    if (total === 0 || total > MAX_REGIONS_IN_ITEM) throw corrupt(what, `item with ${total} regions`);
    item.total = total;
  }
  item.regions.push(Buffer.from(body));
}

function continueRegion(trans: Open, body: Buffer, what: string): void {
  if (trans.items.length === 0) {
    if (trans.header.length + body.length > TRANS_HEADER_SIZE) throw corrupt(what, 'bad transaction header length');
    trans.header = Buffer.concat([trans.header, body]);
    return;
  }
  const item = trans.items[trans.items.length - 1];
  const last = item.regions.length - 1;
  if (last < 0) throw corrupt(what, 'continuation without a region');
  item.regions[last] = Buffer.concat([item.regions[last], body]);
}
