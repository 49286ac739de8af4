import { Errno, StrataError } from '@strata/errors';
import { AttrData, mergeExtents, readAttr } from './attr-data';
import { AttrType } from './attribute';
import { parseAttributeList } from './attribute-list';
import { corrupt } from './errors';
import { Lru } from './lru';
import { MftRecord, parseMftRecord } from './mft-record';
import { Volume, readBytes } from './volume';

/** $MFTMirr holds copies of the first four records ($MFT, $MFTMirr, $LogFile, $Volume). */
const MIRRORED = 4;

/** The master file table: records by number, read through $MFT's own runlist. */
export class Mft {
  private readonly cache: Lru<number, MftRecord>;
  /** Raw MFT chunks: a walk reads neighbouring records, so one source read serves several. */
  private readonly chunks: Lru<number, Promise<Buffer>>;

  private constructor(
    private readonly vol: Volume,
    private readonly data: AttrData,
    cacheBytes: number,
  ) {
    this.cache = new Lru(cacheBytes / 2);
    this.chunks = new Lru(cacheBytes / 2);
  }

  get recordCount(): number {
    return Math.floor(this.data.dataSize / this.vol.boot.mftRecordSize);
  }

  /** The $MFT attribute itself (for $MFT's $BITMAP the caller asks the inode). */
  get mftData(): AttrData {
    return this.data;
  }

  static async open(vol: Volume, cacheBytes: number): Promise<Mft> {
    const { boot } = vol;
    const rec0 = await readFirstRecords(vol, 0);
    // $MFT's $DATA may itself be spread over extension records named by its attribute list.
    const extents = rec0.attributes.filter((a) => a.type === AttrType.DATA && a.name.length === 0);
    if (extents.length === 0 || !extents[0].nonResident) throw corrupt('$MFT', 'no non-resident $DATA in record 0');
    let data = mergeExtents(extents, '$MFT data');
    const list = rec0.attributes.find((a) => a.type === AttrType.ATTRIBUTE_LIST);
    if (list) {
      const listValue = list.value ?? (await readAttr(vol, mergeExtents([list], '$MFT attribute list'), 0, 0x40000));
      const entries = parseAttributeList(listValue, '$MFT attribute list').filter((e) => e.type === AttrType.DATA && e.name.length === 0 && e.record !== 0);
      entries.sort((a, b) => a.lowestVcn - b.lowestVcn);
      for (const e of entries) {
        const raw = await readAttr(vol, data, e.record * boot.mftRecordSize, boot.mftRecordSize);
        if (raw.length !== boot.mftRecordSize) throw corrupt('$MFT', `extension record ${e.record} lies past the mapped part of $MFT`);
        const ext = parseMftRecord(raw, e.record, boot.clusters);
        const found = ext.attributes.find((a) => a.type === AttrType.DATA && a.name.length === 0 && a.instance === e.instance);
        if (!found || ext.baseRecord !== 0) throw corrupt('$MFT', `extension record ${e.record} lacks the $DATA extent its attribute list names`);
        extents.push(found);
        data = mergeExtents(extents, '$MFT data');
      }
    }
    return new Mft(vol, data, cacheBytes);
  }

  /** One record, fixed up and parsed; records 0-3 fall back to $MFTMirr when the primary copy is damaged. */
  async record(n: number): Promise<MftRecord> {
    const hit = this.cache.get(n);
    if (hit) return hit;
    const size = this.vol.boot.mftRecordSize;
    if (!Number.isSafeInteger(n) || n < 0 || n >= this.recordCount) throw new StrataError(Errno.ENOENT, `ntfs: MFT record ${n} does not exist (${this.recordCount} records)`);
    let rec: MftRecord;
    try {
      rec = parseMftRecord(await this.raw(n), n, this.vol.boot.clusters);
    } catch (err) {
      if (n >= MIRRORED || !(err instanceof StrataError)) throw err;
      this.vol.log({ event: 'ntfs.mftmirr', record: n, reason: err.message });
      rec = await readFirstRecords(this.vol, n, err);
    }
    this.cache.set(n, rec, size + 64 * rec.attributes.length);
    return rec;
  }

  /** The raw bytes of record n, from a cached chunk of $MFT. */
  private async raw(n: number): Promise<Buffer> {
    const size = this.vol.boot.mftRecordSize;
    const chunkSize = Math.max(CHUNK, size);
    const chunk = Math.floor((n * size) / chunkSize);
    let p = this.chunks.get(chunk);
    if (!p) {
      p = readAttr(this.vol, this.data, chunk * chunkSize, chunkSize);
      this.chunks.set(chunk, p, chunkSize);
      // A failed read is not kept: the next call tries again (and fails per record).
      p.catch(() => this.chunks.delete(chunk));
    }
    let buf: Buffer;
    try {
      buf = await p;
    } catch {
      return readAttr(this.vol, this.data, n * size, size);
    }
    const at = n * size - chunk * chunkSize;
    return buf.subarray(at, at + size);
  }
}

/** Bytes of $MFT read at once (and cached) around a wanted record. */
const CHUNK = 16 * 1024;

/** Record n (< 4) from $MFT's boot-sector location, or from $MFTMirr when that copy is damaged. */
async function readFirstRecords(vol: Volume, n: number, primaryError?: StrataError): Promise<MftRecord> {
  const { boot } = vol;
  const size = boot.mftRecordSize;
  let first = primaryError;
  if (!first) {
    try {
      return parseMftRecord(await readBytes(vol, boot.mftLcn * boot.clusterSize + n * size, size, `MFT record ${n}`), n, boot.clusters);
    } catch (err) {
      if (!(err instanceof StrataError)) throw err;
      first = err;
      vol.log({ event: 'ntfs.mftmirr', record: n, reason: err.message });
    }
  }
  try {
    return parseMftRecord(await readBytes(vol, boot.mftMirrLcn * boot.clusterSize + n * size, size, `$MFTMirr record ${n}`), n, boot.clusters);
  } catch {
    throw first;
  }
}
