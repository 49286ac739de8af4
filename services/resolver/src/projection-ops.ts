import { Errno, GrpcCode, StrataError } from '@strata/errors';
import type { MetadataCache } from '@strata/cache';
import { CATALOG_DIR_NAME, type LayerRef } from '@strata/layers';
import * as path from 'node:path';
import type { Logger } from '@strata/telemetry';
import { isLinkMode } from '@strata/posix';
import type { GetXattrResponse, ListXattrResponse, ReadDirResponse, ReadLinkResponse, ReadResponse, StatFsResponse, StatResponse } from '@strata/protocol';
import { type Change, type WalkEntry, type WalkError, diff, joinPath, printable, splitPath } from '@strata/traversal';
import type { ChainView, Chains } from './chains';
import { FileData } from './projection/file-data';
import { Metadata } from './projection/metadata';
import { RecordCache, type CacheCounters } from './projection/record-cache';
import { READ_CHUNK, checkOffset, checkXattrName, pageSize } from './projection/request-checks';
import { walkTree } from './projection/tree-walk';
import { MetadataIndexes, type MetadataIndexCounters } from './metadata-index/metadata-indexes';

export { SESSION_READ_MAX, READ_CHUNK, READDIR_DEFAULT_LIMIT, READDIR_MAX_LIMIT } from './projection/request-checks';
export type { CacheCounters, MetadataIndexCounters };

export interface ProjectionOptions {
  log?: Logger;
  /**
   * Walks of sealed chains answered from a metadata index kept in the store
   * (default on; STRATA_METADATA_INDEX=off turns it off, for comparisons).
   */
  metadataIndex?: boolean;
  /** Default `<store>/.strata/index`. */
  metadataIndexDir?: string;
  /** Bound of one index file (default DEFAULT_MAX_INDEX_BYTES). */
  metadataIndexMaxBytes?: number;
}

/**
 * The projection operations shared by the unary API and the Session stream,
 * in domain terms: each checks its request, finds the chain, and asks the
 * metadata records, the file data or the walk for the answer.
 */
export class ProjectionOps {
  private readonly records: RecordCache;
  private readonly meta: Metadata;
  private readonly files = new FileData();
  /** Undefined when metadata indexes are off. */
  readonly indexes: MetadataIndexes | undefined;

  constructor(
    private readonly chains: Chains,
    cache: MetadataCache,
    options: ProjectionOptions = {},
  ) {
    this.records = new RecordCache(cache);
    this.meta = new Metadata(this.records);
    const indexOn = options.metadataIndex ?? process.env.STRATA_METADATA_INDEX !== 'off';
    this.indexes = indexOn
      ? new MetadataIndexes({ dir: options.metadataIndexDir ?? path.join(chains.storeRealRoot.toString(), CATALOG_DIR_NAME, 'index'),
          ...(options.log ? { log: options.log } : {}),
          ...(options.metadataIndexMaxBytes ? { maxIndexBytes: options.metadataIndexMaxBytes } : {}),
        })
      : undefined;
  }

  get counters(): CacheCounters {
    return this.records.counters;
  }

  get bytesServed(): number {
    return this.files.bytesServed;
  }

  /** The image store's real path (extent maps name its files relative to it). */
  get storeRoot(): string {
    return this.chains.storeRealRoot.toString();
  }

  view(ref: LayerRef): Promise<ChainView> {
    return this.chains.view(ref);
  }

  async stat(ref: LayerRef, path: Buffer): Promise<StatResponse> {
    const view = await this.view(ref);
    const indexed = await this.indexes?.attr(view, path);
    if (indexed) return { attr: indexed };
    const { rec } = await this.meta.node(view, path);
    return { attr: rec.attr };
  }

  async readDir(ref: LayerRef, path: Buffer, offset: number, limit: number): Promise<ReadDirResponse> {
    checkOffset('readdir offset', offset, path);
    const view = await this.view(ref);
    const indexed = await this.indexes?.listing(view, path);
    if (indexed === 'not-dir') {
      const canon = joinPath(splitPath(path));
      throw StrataError.notDir(`not a directory: ${printable(canon)}`, canon);
    }
    if (indexed) {
      const page = indexed.entries.slice(offset, offset + pageSize(limit));
      return { entries: page, eof: offset + page.length >= indexed.entries.length, dirAttr: indexed.dirAttr };
    }
    const { canon, rec } = await this.meta.node(view, path);
    if (!rec.directory) throw StrataError.notDir(`not a directory: ${printable(canon)}`, canon);
    const entries = await this.meta.listing(view, canon);
    const page = entries.slice(offset, offset + pageSize(limit));
    return { entries: page, eof: offset + page.length >= entries.length, dirAttr: rec.attr };
  }

  /** One read of at most maxLength bytes; length 0 means "as much as allowed". */
  async read(ref: LayerRef, path: Buffer, offset: number, length: number, maxLength: number): Promise<ReadResponse> {
    checkOffset('read offset', offset, path);
    checkOffset('read length', length, path);
    const view = await this.view(ref);
    const { canon, rec } = await this.meta.node(view, path);
    return this.files.read(view, canon, rec, offset, length === 0 ? maxLength : Math.min(length, maxLength));
  }

  /** A byte range in chunks, for the streamed unary Read; length 0 reads to end of file. */
  async *readStream(ref: LayerRef, path: Buffer, offset: number, length: number): AsyncGenerator<ReadResponse> {
    checkOffset('read offset', offset, path);
    checkOffset('read length', length, path);
    const view = await this.view(ref);
    const { canon, rec } = await this.meta.node(view, path);
    const end = length === 0 ? Number.MAX_SAFE_INTEGER : offset + length;
    let pos = offset;
    for (;;) {
      const chunk = await this.files.read(view, canon, rec, pos, Math.min(READ_CHUNK, end - pos));
      pos += chunk.data.length;
      const last = chunk.eof || pos >= end || chunk.data.length === 0;
      yield chunk;
      if (last) return;
    }
  }

  async readLink(ref: LayerRef, path: Buffer): Promise<ReadLinkResponse> {
    const { canon, rec } = await this.meta.node(await this.view(ref), path);
    if (!isLinkMode(rec.attr?.mode ?? 0)) throw StrataError.invalid(`not a symlink: ${printable(canon)}`, canon);
    return { target: rec.linkTarget };
  }

  async listXattr(ref: LayerRef, path: Buffer): Promise<ListXattrResponse> {
    const xattrs = await this.meta.xattrs(await this.view(ref), path);
    return { names: xattrs.xattrs.map((x) => x.name) };
  }

  async getXattr(ref: LayerRef, path: Buffer, name: string): Promise<GetXattrResponse> {
    checkXattrName(name, path);
    const xattrs = await this.meta.xattrs(await this.view(ref), path);
    const found = xattrs.xattrs.find((x) => x.name === name);
    if (!found) throw new StrataError(Errno.ENODATA, `no attribute ${name} on ${printable(path)}`, { path, code: GrpcCode.NOT_FOUND });
    return { value: found.value };
  }

  async statFs(ref: LayerRef): Promise<StatFsResponse> {
    return (await this.view(ref)).projection.statfs();
  }

  async *walk(ref: LayerRef, path: Buffer, maxDepth: number, includeLinkTargets: boolean): AsyncGenerator<(WalkEntry | WalkError)[]> {
    const view = await this.view(ref);
    if (this.indexes) yield* this.indexes.walk(this.meta, view, path, maxDepth, includeLinkTargets);
    else yield* walkTree(this.meta, view, path, maxDepth, includeLinkTargets);
  }

  async *diff(from: LayerRef, to: LayerRef, path: Buffer): AsyncGenerator<Change[]> {
    const canon = joinPath(splitPath(path));
    const [a, b] = await Promise.all([this.view(from), this.view(to)]);
    yield* diff(a.projection, b.projection, canon);
  }

  close(): void {
    this.chains.close();
  }
}
