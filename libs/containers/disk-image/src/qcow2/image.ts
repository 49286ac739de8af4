import { Errno, StrataError } from '@strata/errors';
import type { ChainCaches } from '../chain';
import { readCompressedCluster } from './compressed-cluster';
import { appendRange, runLimited, type GuestRange, type Layer } from '../layer';
import type { Qcow2Header } from './header';
import { decodeL2Entry, entryOffset, type ClusterMapping, type L2Geometry } from './l2-entry';
import { mapLayer, pushRun, type LayerRun } from '../map-range';
import type { StoreFile } from '../store-file';

/** qemu's own limit on the active L1 table (32 MiB of entries); anything larger is refused, not loaded. */
const MAX_L1_ENTRIES = (32 * 1024 * 1024) / 8;
/** The L1 table is read lazily in pieces of this many entries, so a large table is never loaded whole. */
const L1_CHUNK_ENTRIES = 4096;
const SUBCLUSTERS = 32;
/** Preads in flight per read request. */
const READ_CONCURRENCY = 8;


type Segment =
  | { kind: 'zero' | 'backing'; guest: number; length: number }
  | { kind: 'data'; guest: number; length: number; host: number }
  | { kind: 'compressed'; guest: number; length: number; host: number; compressedSize: number; within: number };

/** A qcow2 image (v2 or v3) over its backing layer, if any. */
export class Qcow2Layer implements Layer {
  readonly size: number;
  private readonly geometry: L2Geometry;
  private readonly l2Entries: number;
  /** L1 entries the virtual size needs; entries beyond are never read. */
  private readonly l1Needed: number;

  constructor(
    private readonly file: StoreFile,
    private readonly header: Qcow2Header,
    private readonly backing: Layer | undefined,
    private readonly caches: ChainCaches,
    /** Distinguishes this image's entries in the chain-wide caches. */
    private readonly cacheId: string,
    /**
     * An internal snapshot's L1 table may be shorter than the current virtual
     * size needs (the disk grew since): qemu reads the slots it lacks as
     * unallocated, and so do we.
     */
    shortL1 = false,
  ) {
    const label = file.label;
    this.size = header.size;
    this.geometry = {
      clusterBits: header.clusterBits,
      clusterSize: header.clusterSize,
      extendedL2: header.extendedL2,
      fileSize: file.size,
      label,
    };
    this.l2Entries = header.clusterSize / (header.extendedL2 ? 16 : 8);
    const bytesPerL1Entry = header.clusterSize * this.l2Entries;
    const needed = Math.ceil(header.size / bytesPerL1Entry);
    this.l1Needed = shortL1 ? Math.min(needed, header.l1Size) : needed;
    if (needed > MAX_L1_ENTRIES || header.l1Size > MAX_L1_ENTRIES) {
      throw new StrataError(
        Errno.EOPNOTSUPP,
        `qcow2 ${label}: an L1 table of ${Math.max(needed, header.l1Size)} entries (virtual size ${header.size}) exceeds qemu's limit of ${MAX_L1_ENTRIES}`,
      );
    }
    if (header.l1Size < this.l1Needed) {
      throw StrataError.corrupt(`qcow2 ${label}: corrupt header: l1_size ${header.l1Size} is too small for virtual size ${header.size} (needs ${this.l1Needed})`,
      );
    }
    if (this.l1Needed > 0) {
      if (header.l1TableOffset === 0 || header.l1TableOffset % header.clusterSize !== 0) {
        throw StrataError.corrupt(`qcow2 ${label}: corrupt header: l1_table_offset ${header.l1TableOffset} is not cluster-aligned`);
      }
      if (header.l1TableOffset + this.l1Needed * 8 > file.size) {
        throw StrataError.corrupt(`qcow2 ${label}: corrupt header: L1 table at ${header.l1TableOffset} is past the end of the file`);
      }
    }
  }

  async readInto(target: Buffer, targetOffset: number, offset: number, length: number): Promise<void> {
    const segments = await this.segments(offset, length);
    // Most reads are one run (contiguous clusters, or all from the backing file): no task list for them.
    if (segments.length === 1) return this.readSegment(segments[0], target, targetOffset + (segments[0].guest - offset));
    await runLimited(
      segments.map((s) => () => this.readSegment(s, target, targetOffset + (s.guest - offset))),
      READ_CONCURRENCY,
    );
  }

  /** Data clusters are runs of this file; compressed ones are unmapped; the rest is zeros or the backing chain's. */
  async mapRange(offset: number, length: number, out: LayerRun[]): Promise<void> {
    for (const s of await this.segments(offset, length)) {
      switch (s.kind) {
        case 'zero':
          pushRun(out, { kind: 'zero', length: s.length });
          break;
        case 'data': {
          if (s.host >= this.file.size) {
            throw StrataError.corrupt(`qcow2 ${this.file.label}: data at file offset ${s.host} is past the end of the file`);
          }
          const inFile = Math.min(s.length, this.file.size - s.host);
          pushRun(out, { kind: 'data', file: this.file, fileOffset: s.host, length: inFile });
          pushRun(out, { kind: 'zero', length: s.length - inFile });
          break;
        }
        case 'compressed':
          pushRun(out, { kind: 'unmapped', length: s.length, reason: 'compressed cluster' });
          break;
        case 'backing':
          await mapLayer(this.backing, s.guest, s.length, out);
          break;
      }
    }
  }

  private async readSegment(s: Segment, target: Buffer, at: number): Promise<void> {
    switch (s.kind) {
      case 'zero':
        target.fill(0, at, at + s.length);
        return;
      case 'data': {
        // A cluster may end past the end of the file (see decodeL2Entry); its start may not.
        if (s.host >= this.file.size) {
          throw StrataError.corrupt(`qcow2 ${this.file.label}: data at file offset ${s.host} is past the end of the file`);
        }
        const inFile = Math.min(s.length, this.file.size - s.host);
        await this.file.readInto(target, at, inFile, s.host);
        target.fill(0, at + inFile, at + s.length);
        return;
      }
      case 'compressed': {
        const { clusterSize } = this.header;
        const cluster = await this.caches.clusters.get(`${this.cacheId}:c:${s.host}`, () =>
          readCompressedCluster(this.file, s.host, s.compressedSize, clusterSize, this.header.compression),
        );
        cluster.copy(target, at, s.within, s.within + s.length);
        return;
      }
      case 'backing': {
        const fromBacking = this.backing ? Math.max(0, Math.min(s.length, this.backing.size - s.guest)) : 0;
        if (fromBacking > 0) await this.backing?.readInto(target, at, s.guest, fromBacking);
        target.fill(0, at + fromBacking, at + s.length);
        return;
      }
    }
  }

  /** Maps a guest range to runs that each take one kind of read; contiguous host data becomes one pread. */
  private async segments(offset: number, length: number): Promise<Segment[]> {
    const out: Segment[] = [];
    const push = (s: Segment): void => {
      const last = out[out.length - 1];
      if (
        last &&
        last.kind === s.kind &&
        last.guest + last.length === s.guest &&
        s.kind !== 'compressed' &&
        (s.kind !== 'data' || (last.kind === 'data' && last.host + last.length === s.host))
      ) {
        last.length += s.length;
      } else {
        out.push(s);
      }
    };
    const { clusterSize } = this.header;
    const end = offset + length;
    let pos = offset;
    let tableIndex = -1;
    let table: Buffer | undefined;
    while (pos < end) {
      const guestCluster = Math.floor(pos / clusterSize);
      const within = pos - guestCluster * clusterSize;
      const take = Math.min(clusterSize - within, end - pos);
      const l1Index = Math.floor(guestCluster / this.l2Entries);
      if (l1Index !== tableIndex) {
        table = await this.l2Table(l1Index);
        tableIndex = l1Index;
      }
      const mapping: ClusterMapping = table
        ? decodeL2Entry(table, guestCluster % this.l2Entries, guestCluster, this.geometry)
        : { kind: 'backing' };
      switch (mapping.kind) {
        case 'zero':
        case 'backing':
          push({ kind: mapping.kind, guest: pos, length: take });
          break;
        case 'data':
          push({ kind: 'data', guest: pos, length: take, host: mapping.host + within });
          break;
        case 'compressed':
          push({ kind: 'compressed', guest: pos, length: take, host: mapping.host, compressedSize: mapping.compressedSize, within });
          break;
        case 'subclusters': {
          const sub = clusterSize / SUBCLUSTERS;
          let p = within;
          while (p < within + take) {
            const i = Math.floor(p / sub);
            const n = Math.min((i + 1) * sub, within + take) - p;
            const bit = 1 << i;
            const guest = guestCluster * clusterSize + p;
            if (mapping.allocated & bit) push({ kind: 'data', guest, length: n, host: mapping.host + p });
            else if (mapping.zero & bit) push({ kind: 'zero', guest, length: n });
            else push({ kind: 'backing', guest, length: n });
            p += n;
          }
          break;
        }
      }
      pos += take;
    }
    return out;
  }

  /**
   * The guest ranges this file answers itself (data, compressed or zero
   * clusters and subclusters), not its backing file: what a snapshot changed
   * over its base. Costs the L1 table and the L2 tables the file has, never
   * a data cluster.
   */
  async ownRanges(): Promise<GuestRange[]> {
    const { clusterSize } = this.header;
    const out: GuestRange[] = [];
    const add = (offset: number, length: number): void => {
      const end = Math.min(offset + length, this.size);
      if (end <= offset) return;
      const last = out[out.length - 1];
      if (last && last.offset + last.length === offset) last.length = end - last.offset;
      else out.push({ offset, length: end - offset });
    };
    for (let l1Index = 0; l1Index < this.l1Needed; l1Index++) {
      const table = await this.l2Table(l1Index);
      if (!table) continue;
      for (let i = 0; i < this.l2Entries; i++) {
        const guestCluster = l1Index * this.l2Entries + i;
        const guest = guestCluster * clusterSize;
        if (guest >= this.size) break;
        const mapping = decodeL2Entry(table, i, guestCluster, this.geometry);
        if (mapping.kind === 'backing') continue;
        if (mapping.kind !== 'subclusters') {
          add(guest, clusterSize);
          continue;
        }
        const sub = clusterSize / SUBCLUSTERS;
        const own = (mapping.allocated | mapping.zero) >>> 0;
        for (let s = 0; s < SUBCLUSTERS; s++) if (own & (1 << s)) add(guest + s * sub, sub);
      }
    }
    return out;
  }

  /** The L2 table offset of one L1 slot (0: unallocated, or past this view's L1 table), checked. */
  private async l2Offset(l1Index: number): Promise<number> {
    const { clusterSize, l1TableOffset } = this.header;
    const label = this.file.label;
    if (l1Index >= this.l1Needed) return 0;
    const chunk = Math.floor(l1Index / L1_CHUNK_ENTRIES);
    const first = chunk * L1_CHUNK_ENTRIES;
    const count = Math.min(L1_CHUNK_ENTRIES, this.l1Needed - first);
    // Keyed by the table's offset too: an internal snapshot's L1 is another table of the same file.
    const l1 = await this.caches.metadata.get(`${this.cacheId}:l1:${l1TableOffset}:${chunk}`, () =>
      this.file.read(l1TableOffset + first * 8, count * 8),
    );
    const at = (l1Index - first) * 8;
    const l2Offset = entryOffset(l1.readUInt32BE(at), l1.readUInt32BE(at + 4));
    if (l2Offset === 0) return 0;
    if (l2Offset % clusterSize !== 0 || l2Offset + clusterSize > this.file.size) {
      throw StrataError.corrupt(`qcow2 ${label}: corrupt L1 entry ${l1Index}: L2 table offset ${l2Offset} is ${l2Offset % clusterSize !== 0 ? 'not cluster-aligned' : 'past the end of the file'}`,
      );
    }
    return l2Offset;
  }

  /**
   * The last L2 table this view looked up: reads near each other (a file's
   * pieces, one sequential reader) land in one table and skip the L1 and
   * cache lookups. The tables of an open image never change (a LIVE layer
   * reopens the image), so it is never stale.
   */
  private lastL2: { l1Index: number; table: Buffer | undefined } | undefined;

  /** The L2 table for one L1 slot, or undefined when the slot is unallocated. */
  private async l2Table(l1Index: number): Promise<Buffer | undefined> {
    const last = this.lastL2;
    if (last && last.l1Index === l1Index) return last.table;
    const l2Offset = await this.l2Offset(l1Index);
    const table = l2Offset === 0 ? undefined : await this.caches.metadata.get(`${this.cacheId}:l2:${l2Offset}`, () => this.file.read(l2Offset, this.header.clusterSize));
    this.lastL2 = { l1Index, table };
    return table;
  }

  /** The same file seen through another L1 table (an internal snapshot's), over the same backing file. */
  withL1(l1TableOffset: number, l1Size: number): Qcow2Layer {
    return new Qcow2Layer(this.file, { ...this.header, l1TableOffset, l1Size }, this.backing, this.caches, this.cacheId, true);
  }

  /**
   * The guest ranges whose clusters are mapped differently here and in
   * `other`, another view (L1 table) of the same file: what changed between
   * two internal snapshots, or a snapshot and the active state. An L1 slot
   * whose L2 table both share (qcow2 copies a table only when a write
   * touches it) costs nothing; a copied table is compared entry by entry,
   * ignoring the refcount-is-one flag, which copying changes. Data clusters
   * are never read.
   */
  async changedSince(other: Qcow2Layer): Promise<GuestRange[]> {
    const { clusterSize } = this.header;
    const entryBytes = this.header.extendedL2 ? 16 : 8;
    const out: GuestRange[] = [];
    const size = Math.max(this.size, other.size);
    const perSlot = clusterSize * this.l2Entries;
    const slots = Math.ceil(size / perSlot);
    const empty = Buffer.alloc(clusterSize);
    for (let slot = 0; slot < slots; slot++) {
      const [mine, theirs] = await Promise.all([this.l2Offset(slot), other.l2Offset(slot)]);
      if (mine === theirs) continue;
      const [a, b] = await Promise.all([this.l2Table(slot), other.l2Table(slot)]);
      const ta = a ?? empty;
      const tb = b ?? empty;
      for (let i = 0; i < this.l2Entries; i++) {
        const at = i * entryBytes;
        // Bit 63 (QCOW_OFLAG_COPIED) says only whether the refcount is one.
        const same =
          (ta.readUInt32BE(at) & 0x7fffffff) === (tb.readUInt32BE(at) & 0x7fffffff) &&
          ta.compare(tb, at + 4, at + entryBytes, at + 4, at + entryBytes) === 0;
        if (!same) appendRange(out, (slot * this.l2Entries + i) * clusterSize, clusterSize, size);
      }
    }
    // A disk that grew or shrank between the two differs where only one of them reaches.
    const smaller = Math.min(this.size, other.size);
    if (smaller < size) appendRange(out, smaller, size - smaller, size);
    return out;
  }
}
