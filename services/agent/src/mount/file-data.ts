import { layerRefFromProto, type LayerRef } from '@strata/protocol';
import { CHUNK_SIZE, type ChunkCache } from './chunk-cache';
import { holdForTurn } from './chunk-holds';
import { chunkAt, pagesOf, type PieceUnit } from './read-policy';
import type { Ask } from '@strata/client';
import type { LayerReader, StoreView } from '../store-view';

/** What a data fetch needs to know of a file. */
export interface FileRef {
  key: string;
  path: Buffer;
  /**
   * The file's size, when its attributes are known (a sealed layer's): a
   * fetch of its last chunk asks only for what is there. The resolver
   * holds back reads by the bytes they ask for, so a tree of small files
   * asked in whole chunks had 16 in flight where 64 fit.
   */
  size?: number;
}

/** Data of a file from `start`; shorter than `size` at end of file. */
interface Piece {
  start: number;
  data: Buffer;
  size: number;
}

export interface FileDataOptions {
  ask: Ask;
  layer: LayerRef;
  chunks: ChunkCache;
  /** Unique among the agent's mounts: prefixes this mount's chunk keys. */
  mountKey: string;
  ttlMs?: number;
  /**
   * The agent's view of the image store (--store-view): a sealed layer's
   * pieces are read from the store files its extent maps name, the rest
   * (unmapped runs, refusals, LIVE layers) with Session reads.
   */
  storeView?: StoreView;
}

/**
 * One mount's file bytes: aligned chunks and pages in the agent's shared
 * ChunkCache, each fetched with one Session read, concurrent readers of a
 * piece sharing the fetch.
 */
export class FileData {
  private readonly o: FileDataOptions;
  private tap?: (key: string, index: number, data: Buffer) => void;
  /** Only for a sealed layer: a LIVE file may change between its map and the reads of it. */
  private readonly direct: LayerReader | undefined;

  constructor(o: FileDataOptions) {
    this.o = o;
    this.direct = o.storeView && o.ttlMs === undefined ? o.storeView.reader(layerRefFromProto(o.layer)) : undefined;
  }

  private chunkKey(h: FileRef, index: number): string {
    return `${this.o.mountKey}\0${h.key}\0${index}`;
  }

  private pagesKey(h: FileRef, start: number, size: number): string {
    return `${this.o.mountKey}\0${h.key}\0p${start}+${size}`;
  }

  /** How much of [offset, offset+length) to ask for: up to a sealed file's known end. */
  private sized(h: FileRef, offset: number, length: number): number {
    if (h.size === undefined || this.o.ttlMs !== undefined || offset >= h.size) return length;
    return Math.min(length, h.size - offset);
  }

  private fetch(h: FileRef, offset: number, length: number): () => Promise<Buffer> {
    const viaSession = async (at: number, n: number): Promise<Buffer> => (await this.o.ask('read', { layer: this.o.layer, path: h.path, offset: at, length: n })).data;
    const asked = this.sized(h, offset, length);
    // A whole chunk, or all of the file's last one: what the data cache's fill writes (a file's end is the answer's, whatever was asked).
    const chunk = offset % CHUNK_SIZE === 0 && (length === CHUNK_SIZE || (asked < length && asked === this.sized(h, offset, CHUNK_SIZE)));
    return async () => {
      const data = this.direct ? await this.direct.read(h.path, offset, asked, viaSession) : await viaSession(offset, asked);
      if (chunk) this.tap?.(h.key, offset / CHUNK_SIZE, data);
      return data;
    };
  }

  /** Told of every chunk fetched (the on-disk cache writes the chunks readers fetched instead of fetching them again). */
  tapChunks(tap: (key: string, index: number, data: Buffer) => void): void {
    this.tap = tap;
  }

  /** A cached piece of a file (a chunk or pages), fetched once if missing; the sync peek spares a tick on hits. */
  private async piece(h: FileRef, key: string, start: number, size: number): Promise<Piece> {
    const data = this.o.chunks.peek(key) ?? (await this.o.chunks.get(key, this.fetch(h, start, size), this.o.ttlMs));
    return { start, data, size };
  }

  private chunkAt(h: FileRef, pos: number): Promise<Piece> {
    const c = chunkAt(pos);
    return this.piece(h, this.chunkKey(h, c.index), c.start, c.size);
  }

  /**
   * Chunk `index` of a file for the on-disk data cache's fill, from the
   * cache or fetched once (shared with readers of it). A file of one chunk
   * leaves the chunk cache as the fill takes it: from now on the fill holds
   * it on disk and reads come from there (or from the kernel's passthrough),
   * so keeping it here too kept every small file of a tree read twice (some
   * 190 MB outside the heap for the generated bench stack). Should the fill
   * fail, the next read fetches it again.
   */
  async chunk(h: FileRef, index: number): Promise<Buffer> {
    const key = this.chunkKey(h, index);
    const data = (await this.piece(h, key, index * CHUNK_SIZE, CHUNK_SIZE)).data;
    if (index === 0 && data.length < CHUNK_SIZE && this.o.ttlMs === undefined) this.o.chunks.delete(key);
    return data;
  }

  /**
   * The piece from `pos` for a jump reading up to `end`: the whole chunk if
   * it is cached, else the pages [pos, end) lies in (readers of the same
   * pages at once share their fetch; a later read of them is the kernel
   * page cache's).
   */
  private pagesAt(h: FileRef, pos: number, end: number): Promise<Piece> {
    const c = chunkAt(pos);
    const chunk = this.o.chunks.peek(this.chunkKey(h, c.index));
    if (chunk) return Promise.resolve({ start: c.start, data: chunk, size: CHUNK_SIZE });
    const p = pagesOf(pos, end);
    return this.piece(h, this.pagesKey(h, p.start, p.size), p.start, p.size);
  }

  /**
   * [pos, end) of a file: a view of the cached piece when it lies within
   * one (most reads: the kernel asks within a chunk), else a copy. A 1 MiB
   * buffer per READ was the agent's main cost on sequential reads (garbage
   * collection of external memory), not the copy itself. A view is valid
   * for this turn of the event loop (its chunk's buffer may be reused
   * after an eviction): the caller writes it out or copies it before
   * awaiting anything but promises.
   */
  async view(h: FileRef, pos: number, end: number, unit: PieceUnit): Promise<Buffer> {
    const piece = unit === 'chunk' ? await this.chunkAt(h, pos) : await this.pagesAt(h, pos, end);
    const from = pos - piece.start;
    if (from >= piece.data.length) return Buffer.alloc(0);
    if (end - piece.start <= piece.data.length || piece.data.length < piece.size) {
      // Written to the kernel within this turn's promise chain; held so an eviction meanwhile cannot reuse it.
      holdForTurn(piece.data);
      return piece.data.subarray(from, Math.min(piece.data.length, end - piece.start));
    }
    const into = Buffer.allocUnsafe(end - pos);
    return into.subarray(0, await this.copy(h, into, pos, end, unit));
  }

  /** Copies [pos, end) of a file into `into` in pieces of `unit`; returns the byte count, short at end of file. */
  async copy(h: FileRef, into: Buffer, pos: number, end: number, unit: PieceUnit): Promise<number> {
    let copied = 0;
    while (pos + copied < end) {
      const piece = unit === 'chunk' ? await this.chunkAt(h, pos + copied) : await this.pagesAt(h, pos + copied, end);
      const from = pos + copied - piece.start;
      if (from >= piece.data.length) break;
      copied += piece.data.copy(into, copied, from, Math.min(piece.data.length, end - piece.start));
      if (piece.data.length < piece.size) break;
    }
    return copied;
  }

  /** Starts fetching a chunk nobody waits for yet (readahead, sibling files). */
  prefetchChunk(h: FileRef, index: number): void {
    this.o.chunks.prefetch(this.chunkKey(h, index), this.fetch(h, index * CHUNK_SIZE, CHUNK_SIZE), this.o.ttlMs);
  }

  /** Drops this mount's chunks and pages (at unmount). */
  dispose(): void {
    this.o.chunks.drop(`${this.o.mountKey}\0`);
  }
}
