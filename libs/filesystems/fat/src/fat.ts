/**
 * A FAT12/16/32 volume with VFAT long names, read-only, answering as the
 * kernel's vfat driver does with default mount options (README.md).
 */
import { Errno, StrataError } from '@strata/errors';
import {
  readExactly,
  type ByteSource,
  type Filesystem,
  type FilesystemOptions,
  type FsDirEntry,
  type FsEvent,
  type FsNode,
  type FsStatFs,
  type FsXattr,
} from '@strata/filesystem';
import { BOOT_SECTOR_BYTES, labelText, parseBootSector, type Geometry } from './boot-sector';
import { clusterAt, walkChain, type Chain } from './cluster-chain';
import { ATTR_DIR, ATTR_LFN, ATTR_VOLUME, DELETED, ENTRY_BYTES } from './dir-entry';
import { scanDirectory, type DirRecord, type ScanResult } from './directory-scan';
import { corrupt } from './errors';
import { FatTable } from './fat-table';
import { decodeHandle, entryHandle, MAX_DIR_ENTRIES, ROOT_HANDLE } from './handle';
import { lookupRecord } from './lookup';
import { Lru } from './lru';
import { entryNode, rootNode } from './node-mapping';

const DEFAULT_CACHE_BYTES = 16 * 1024 * 1024;
/** One source read covers at most this much of a file's contiguous clusters. */
const MAX_DATA_READ = 8 * 1024 * 1024;
/** fat_statfs: FAT_LFN_LEN (255) × NLS_MAX_CHARSET_SIZE (6). */
const NAME_MAX = 255 * 6;
const FAT_STATE_DIRTY = 0x01;

interface Directory {
  /** Bytes of the directory's clusters (its st_size), or of the fixed root area. */
  size: number;
  scan: ScanResult;
  bySlot: Map<number, DirRecord>;
}

interface Resolved {
  node: FsNode;
  /** First cluster of a directory (0 for the root) or of a file's data. */
  start: number;
  isDir: boolean;
}

async function guarded<T>(log: (event: FsEvent) => void, op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StrataError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    log({ event: 'vfat.internal', op, message, stack: err instanceof Error ? err.stack : undefined });
    throw new StrataError(Errno.EUCLEAN, `vfat: ${op}: unexpected failure on corrupt data: ${message}`, { cause: err });
  }
}

export class Fat implements Filesystem {
  readonly type = 'vfat' as const;
  readonly rootHandle = ROOT_HANDLE;
  readonly blockSize: number;
  readonly label: string;
  readonly uuid: string;
  readonly needsRecovery: boolean;
  private readonly directories: Lru<number, Directory>;
  private readonly chains: Lru<string, Chain>;
  private freeClusters: number | undefined;

  private constructor(
    private readonly source: ByteSource,
    readonly geometry: Geometry,
    private readonly fat: FatTable,
    private readonly log: (event: FsEvent) => void,
    cacheBytes: number,
    root: Directory,
    label: string,
    dirty: boolean,
  ) {
    this.blockSize = geometry.clusterSize;
    this.uuid = geometry.serial;
    this.label = label;
    this.needsRecovery = dirty;
    this.directories = new Lru(cacheBytes);
    this.chains = new Lru(4096);
    this.directories.set(0, root, 1);
  }

  static async open(source: ByteSource, options: FilesystemOptions = {}): Promise<Fat> {
    const log = options.log ?? (() => undefined);
    return guarded(log, 'open', async () => {
      if (source.size < BOOT_SECTOR_BYTES) throw new StrataError(Errno.EINVAL, `no FAT filesystem: volume of ${source.size} bytes`);
      const boot = await source.read(0, BOOT_SECTOR_BYTES);
      const geo = parseBootSector(boot);
      const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
      const fat = new FatTable(source, geo, Math.floor(cacheBytes / 4));
      const pending = new Fat(source, geo, fat, log, cacheBytes, { size: 0, scan: { records: [], subdirs: 0, dotdotStart: undefined }, bySlot: new Map() }, '', false);
      const { directory: root, raw } = await pending.loadDirectory(0);
      const stateByte = boot[geo.fatBits === 32 ? 65 : 37] ?? 0;
      const label = rootLabel(raw) ?? geo.bootLabel;
      return new Fat(source, geo, fat, log, cacheBytes, root, label, (stateByte & FAT_STATE_DIRTY) !== 0);
    });
  }

  node(handle: number): Promise<FsNode> {
    return guarded(this.log, 'node', async () => (await this.resolve(handle)).node);
  }

  lookup(dir: number, name: Buffer): Promise<number | undefined> {
    return guarded(this.log, 'lookup', async () => {
      const d = await this.resolveDir(dir);
      const directory = await this.directory(d.start);
      const record = lookupRecord(directory.scan.records, name);
      return record ? entryHandle(d.start, record.slot) : undefined;
    });
  }

  readdir(dir: number): Promise<FsDirEntry[]> {
    return guarded(this.log, 'readdir', async () => {
      const d = await this.resolveDir(dir);
      const directory = await this.directory(d.start);
      return directory.scan.records.map((r) => ({
        name: Buffer.from(r.name),
        handle: entryHandle(d.start, r.slot),
        type: r.entry.attr & ATTR_DIR ? ('dir' as const) : ('file' as const),
      }));
    });
  }

  readlink(handle: number): Promise<Buffer> {
    return guarded(this.log, 'readlink', async () => {
      await this.resolve(handle);
      throw new StrataError(Errno.EINVAL, 'vfat: not a symbolic link (FAT has none)');
    });
  }

  read(handle: number, offset: number, length: number): Promise<Buffer> {
    return guarded(this.log, 'read', async () => {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
        throw new StrataError(Errno.EINVAL, `vfat: bad read range ${offset}+${length}`);
      }
      const r = await this.resolve(handle);
      if (r.isDir) throw new StrataError(Errno.EISDIR, 'vfat: is a directory');
      const size = r.node.size;
      const end = Math.min(size, offset + length);
      if (offset >= end) return Buffer.alloc(0);
      return this.readFileRange(r.start, size, offset, end);
    });
  }

  xattrs(handle: number): Promise<FsXattr[]> {
    return guarded(this.log, 'xattrs', async () => {
      await this.resolve(handle);
      return [];
    });
  }

  statfs(): Promise<FsStatFs> {
    return guarded(this.log, 'statfs', async () => {
      // fat_statfs counts the FAT on first use: FSInfo's free count is only trusted with the usefree option.
      this.freeClusters ??= await this.fat.countFree();
      const cs = this.geometry.clusterSize;
      return {
        bsize: cs,
        frsize: cs,
        blocks: this.geometry.maxCluster - 2,
        bfree: this.freeClusters,
        bavail: this.freeClusters,
        files: 0,
        ffree: 0,
        namemax: NAME_MAX,
      };
    });
  }

  /** A file's clusters as runs [first cluster, count], as far as its size needs them (tests check fragmentation with it). */
  clusterRuns(handle: number): Promise<[number, number][]> {
    return guarded(this.log, 'clusterRuns', async () => {
      const r = await this.resolve(handle);
      if (r.isDir || r.node.size === 0) return [];
      return (await this.fileChain(r.start, r.node.size)).runs.map((run) => [run.cluster, run.count]);
    });
  }

  private async resolveDir(handle: number): Promise<Resolved> {
    const r = await this.resolve(handle);
    if (!r.isDir) throw new StrataError(Errno.ENOTDIR, 'vfat: not a directory');
    return r;
  }

  private async resolve(handle: number): Promise<Resolved> {
    const cs = this.geometry.clusterSize;
    if (handle === ROOT_HANDLE) {
      const root = await this.directory(0);
      return { node: rootNode(ROOT_HANDLE, root.size, root.scan.subdirs, cs), start: 0, isDir: true };
    }
    const pos = decodeHandle(handle, this.geometry.maxCluster);
    const parent = await this.directory(pos.dirKey);
    const record = parent.bySlot.get(pos.index);
    if (!record) throw new StrataError(Errno.ESTALE, `vfat: handle ${handle} names no entry`);
    const e = record.entry;
    if (!(e.attr & ATTR_DIR)) return { node: entryNode(handle, e, cs, undefined), start: e.start, isDir: false };
    const what = `directory ${record.name.toString('utf8')}`;
    // fat_validate_dir: a directory must have its own clusters, never none and never the root's.
    if (e.start === 0 || (this.geometry.fatBits === 32 && e.start === this.geometry.rootCluster)) throw corrupt(what, `invalid first cluster ${e.start}`);
    const dir = await this.directory(e.start);
    if (dir.scan.subdirs < 2) throw corrupt(what, 'fewer than two directory entries ("." and "..")');
    // Not a kernel check: ".." must lead back to the parent, which keeps every walk from the root free of cycles.
    const up = dir.scan.dotdotStart;
    const parentOk = pos.dirKey === 0 ? up === 0 || up === this.geometry.rootCluster : up === pos.dirKey;
    if (!parentOk) throw corrupt(what, `".." names cluster ${String(up)}, not its parent directory (${pos.dirKey})`);
    return { node: entryNode(handle, e, cs, { size: dir.size, subdirs: dir.scan.subdirs }), start: e.start, isDir: true };
  }

  private async directory(key: number): Promise<Directory> {
    const hit = this.directories.get(key);
    if (hit) return hit;
    const { directory, raw } = await this.loadDirectory(key);
    this.directories.set(key, directory, raw.length + 64 * directory.scan.records.length);
    return directory;
  }

  /** Reads a whole directory: the fixed root area (FAT12/16), or the clusters of its chain. */
  private async loadDirectory(key: number): Promise<{ directory: Directory; raw: Buffer }> {
    const g = this.geometry;
    let raw: Buffer;
    let size: number;
    if (key === 0 && g.fatBits !== 32) {
      size = g.rootDirEntries * ENTRY_BYTES;
      raw = await readExactly(this.source, g.rootDirOffset, size, 'root directory');
    } else {
      const start = key === 0 ? g.rootCluster : key;
      const maxClusters = Math.ceil((MAX_DIR_ENTRIES * ENTRY_BYTES) / g.clusterSize);
      const what = key === 0 ? 'root directory' : `directory at cluster ${key}`;
      const chain = await walkChain(this.fat, start, maxClusters + 1, g.maxCluster, what);
      if (chain.length > maxClusters) throw corrupt(what, `more than ${MAX_DIR_ENTRIES} entries (${maxClusters}+ clusters)`);
      size = chain.length * g.clusterSize;
      raw = await this.readRuns(chain, 0, chain.length, what);
    }
    const scan = scanDirectory(raw, Math.min(MAX_DIR_ENTRIES, raw.length / ENTRY_BYTES), g.fatBits === 32);
    return { directory: { size, scan, bySlot: new Map(scan.records.map((r) => [r.slot, r])) }, raw };
  }

  private async fileChain(start: number, size: number): Promise<Chain> {
    const needed = Math.ceil(size / this.geometry.clusterSize);
    const key = `${start}:${needed}`;
    const hit = this.chains.get(key);
    if (hit) return hit;
    const chain = await walkChain(this.fat, start, needed, this.geometry.maxCluster, `file at cluster ${start}`);
    this.chains.set(key, chain);
    return chain;
  }

  private async readFileRange(start: number, size: number, offset: number, end: number): Promise<Buffer> {
    if (start === 0) throw corrupt(`file of ${size} bytes`, 'no clusters');
    const cs = this.geometry.clusterSize;
    const chain = await this.fileChain(start, size);
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    if (last >= chain.length) {
      throw corrupt(`file at cluster ${start}`, `size ${size} needs ${Math.ceil(size / cs)} clusters, the chain has ${chain.length}`);
    }
    const data = await this.readRuns(chain, first, last + 1, `file at cluster ${start}`);
    const skip = offset - first * cs;
    return data.subarray(skip, skip + (end - offset));
  }

  /** Chain indexes [from, to) as one buffer, one source read per contiguous stretch (≤ MAX_DATA_READ). */
  private async readRuns(chain: Chain, from: number, to: number, what: string): Promise<Buffer> {
    const g = this.geometry;
    const parts: Buffer[] = [];
    let i = from;
    while (i < to) {
      const c = clusterAt(chain, i);
      if (c === undefined) throw corrupt(what, `chain index ${i} missing`);
      let n = 1;
      const maxRun = Math.max(1, Math.floor(MAX_DATA_READ / g.clusterSize));
      while (i + n < to && n < maxRun && clusterAt(chain, i + n) === c + n) n++;
      parts.push(await readExactly(this.source, g.dataOffset + (c - 2) * g.clusterSize, n * g.clusterSize, what));
      i += n;
    }
    return parts.length === 1 && parts[0] ? parts[0] : Buffer.concat(parts);
  }
}

/**
 * The volume label entry of the root directory as blkid finds it: the
 * first entry with the volume bit and not the directory bit, skipping
 * deleted entries, long-name slots and entries with a cluster, stopping at
 * the first unused entry.
 */
function rootLabel(raw: Buffer): string | undefined {
  for (let off = 0; off + ENTRY_BYTES <= raw.length; off += ENTRY_BYTES) {
    const first = raw[off] ?? 0;
    if (first === 0) break;
    const attr = raw[off + 11] ?? 0;
    if (first === DELETED || raw.readUInt16LE(off + 20) !== 0 || raw.readUInt16LE(off + 26) !== 0 || (attr & 0x3f) === ATTR_LFN) continue;
    if ((attr & (ATTR_VOLUME | ATTR_DIR)) === ATTR_VOLUME) {
      const label = labelText(raw.subarray(off, off + 11));
      return label === '' ? undefined : label;
    }
  }
  return undefined;
}
