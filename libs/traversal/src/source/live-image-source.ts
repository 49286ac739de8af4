import { promises as fsp } from 'node:fs';
import { Errno, isStrataError } from '@strata/errors';
import { ImageSource, type ImageSourceOptions } from './image-source';
import type { DeltaHint, LayerObject, LayerSource, SourceDirent, StatFs } from './layer-source';

/** Attempts of one operation while the guest's writes make it fail (torn reads). */
const ATTEMPTS = 5;
/** First pause between attempts; doubled each time (25, 50, 100, 200 ms: inside the one-second budget). */
const FIRST_PAUSE_MS = 25;
/** An old reader is closed this long after its replacement, so calls still running on it finish. */
const RETIRE_AFTER_MS = 5000;
/** Checks of the image files at most this often, however many requests ask. */
const CHECK_INTERVAL_MS = 50;

/** What says an image file may have been written: (dev, ino) names the file, size/mtime/ctime move on every write. */
async function fileStamp(path: string): Promise<string> {
  const st = await fsp.stat(path, { bigint: true });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A failure a concurrent write of the guest can cause: corrupt-looking metadata (bad checksum, bad structure), or a reader closed under us. */
function isTorn(err: unknown): boolean {
  return isStrataError(err) && (err.errno === Errno.EIO || err.errno === Errno.EBADMSG || err.errno === Errno.EUCLEAN || err.errno === Errno.EBADF);
}

/**
 * A disk image that a running VM is writing (a LIVE layer). It serves from
 * an ImageSource opened on the image as it was at the last check, and
 * reopens it when the files' size or times moved or the journal has a new
 * transaction at its head: the qcow2 header and L1 table, the superblock,
 * group descriptors and the journal are read again (and replayed), nothing
 * else until asked. An operation that meets corrupt-looking data is retried
 * on a fresh reader, so a block torn by the guest's write is never served.
 * Objects are inode numbers, which stay valid across reopens.
 */
export class LiveImageSource implements LayerSource {
  readonly overlayRules: boolean;
  private current: ImageSource;
  private stamps: string[];
  private lastCheck = 0;
  private checking: Promise<void> | undefined;
  private reopens = 0;
  private readonly retiring = new Set<NodeJS.Timeout>();
  private closed = false;

  private constructor(
    private readonly options: ImageSourceOptions,
    first: ImageSource,
    stamps: string[],
  ) {
    this.overlayRules = first.overlayRules;
    this.current = first;
    this.stamps = stamps;
  }

  static async open(options: ImageSourceOptions): Promise<LiveImageSource> {
    const { source, stamps } = await openStamped(options);
    return new LiveImageSource(options, source, stamps);
  }

  /** Changes whenever a new reader is opened: caches keyed by it start afresh. */
  get identity(): string {
    return `live:${this.current.identity}`;
  }

  get imageFormat(): string {
    return this.current.imageFormat;
  }

  get filesystemType(): string {
    return this.current.filesystemType;
  }

  /** How many times the image was found changed and reopened. */
  get generation(): number {
    return this.reopens;
  }

  /**
   * Looks at what the guest may have written since the last look and
   * reopens the image if anything moved. `force`: even if looked at just now.
   */
  refresh(force = false): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.checking) return this.checking;
    if (!force && performance.now() - this.lastCheck < CHECK_INTERVAL_MS) return Promise.resolve();
    const checking = this.check(force).finally(() => {
      this.lastCheck = performance.now();
      this.checking = undefined;
    });
    this.checking = checking;
    return checking;
  }

  private async check(force: boolean): Promise<void> {
    const files = this.current.files;
    const stamps = await Promise.all(files.map(fileStamp)).catch(() => undefined);
    const moved = !stamps || stamps.some((s, i) => s !== this.stamps[i]) || (await this.current.journalHeadChanged().catch(() => true));
    if (!moved && !force) return;
    const next = await openStamped(this.options, files);
    if (this.closed) {
      await next.source.close();
      return;
    }
    const old = this.current;
    this.current = next.source;
    this.stamps = next.stamps;
    this.reopens++;
    const timer = setTimeout(() => {
      this.retiring.delete(timer);
      void old.close().catch(() => undefined);
    }, RETIRE_AFTER_MS);
    timer.unref();
    this.retiring.add(timer);
  }

  /** Runs an operation on the current reader; a torn read is retried on a freshly opened one. */
  private async run<T>(op: (src: ImageSource) => Promise<T>): Promise<T> {
    let pause = FIRST_PAUSE_MS;
    for (let attempt = 1; ; attempt++) {
      const src = this.current;
      try {
        return await op(src);
      } catch (err) {
        if (!isTorn(err) || attempt >= ATTEMPTS || this.closed) throw err;
        await sleep(pause);
        pause *= 2;
        await this.refresh(true).catch(() => undefined);
      }
    }
  }

  private inner(obj: LayerObject, src: ImageSource): LayerObject {
    return { layer: src, ref: obj.ref, st: obj.st };
  }

  private outer(obj: LayerObject): LayerObject {
    return { layer: this, ref: obj.ref, st: obj.st };
  }

  root(): Promise<LayerObject> {
    return this.run(async (s) => this.outer(await s.root()));
  }

  lookup(dir: LayerObject, name: Buffer): Promise<LayerObject | undefined> {
    return this.run(async (s) => {
      const found = await s.lookup(this.inner(dir, s), name);
      return found && this.outer(found);
    });
  }

  list(dir: LayerObject): Promise<SourceDirent[]> {
    return this.run((s) => s.list(this.inner(dir, s)));
  }

  lookupMany(dir: LayerObject, names: readonly Buffer[]): Promise<(LayerObject | undefined)[]> {
    return this.run(async (s) => (await s.lookupMany(this.inner(dir, s), names)).map((o) => o && this.outer(o)));
  }

  readlink(obj: LayerObject): Promise<Buffer> {
    return this.run((s) => s.readlink(this.inner(obj, s)));
  }

  read(obj: LayerObject, offset: number, length: number): Promise<Buffer> {
    return this.run((s) => s.read(this.inner(obj, s), offset, length));
  }

  listXattrs(obj: LayerObject): Promise<string[]> {
    return this.run((s) => s.listXattrs(this.inner(obj, s)));
  }

  getXattr(obj: LayerObject, name: string): Promise<Buffer | undefined> {
    return this.run((s) => s.getXattr(this.inner(obj, s), name));
  }

  statfs(): Promise<StatFs> {
    return this.run((s) => s.statfs());
  }

  locate(obj: LayerObject): Buffer {
    return this.current.locate(this.inner(obj, this.current));
  }

  readLocated(location: Buffer, offset: number, length: number): Promise<Buffer> {
    return this.run((s) => s.readLocated(location, offset, length));
  }

  /** Between two reads of the same running image there is no cluster map to go by: diff compares everything. */
  deltaOver(): Promise<DeltaHint | undefined> {
    return Promise.resolve(undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.retiring) clearTimeout(t);
    this.retiring.clear();
    await this.checking?.catch(() => undefined);
    await this.current.close();
  }
}

/**
 * A reader with the stamps of its files, taken before it opened: a write
 * after the stamps is then seen at the next check, never missed. The first
 * open learns which files the backing chain has, so it opens twice.
 */
async function openStamped(options: ImageSourceOptions, knownFiles?: readonly string[], attempt = 1): Promise<{ source: ImageSource; stamps: string[] }> {
  let files = knownFiles;
  if (!files) {
    const probe = await ImageSource.open(options);
    files = probe.files;
    await probe.close();
  }
  const stamps = await Promise.all(files.map(fileStamp));
  const source = await ImageSource.open(options);
  const same = source.files.length === files.length && source.files.every((f, i) => f === files[i]);
  // A chain that keeps changing is served as last opened; the next check looks again.
  if (same || attempt >= 3) return { source, stamps };
  // The backing chain changed between the two (a rebase): stamp what the reader actually reads.
  await source.close();
  return openStamped(options, undefined, attempt + 1);
}
