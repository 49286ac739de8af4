import { Errno, StrataError } from '@strata/errors';
import { isDirStat } from '../attr';
import { printable, splitPath } from '../paths';
import { ImageSource, type ImageSourceOptions } from '../source/image-source';
import type { LayerObject, LayerSource, SourceDirent, StatFs } from '../source/layer-source';
import type { GuestMount } from './guest-inspection';

function joinPath(dir: string, name: Buffer): string {
  const n = name.toString('latin1');
  return dir === '/' ? `/${n}` : `${dir}/${n}`;
}

/**
 * The tree a guest mounts, composed of several filesystems of one disk
 * image (what `guestmount -i` shows): the root filesystem, and each
 * filesystem its fstab mounts placed at its mountpoint, covering what the
 * mountpoint directory holds underneath, as mount(2) does. Objects carry
 * the index of the filesystem they belong to; each keeps its own st_dev.
 */
export class GuestSource implements LayerSource {
  readonly identity: string;
  readonly overlayRules: boolean;
  /** Guest path → index in `parts` of the filesystem mounted there. */
  private readonly mountAt = new Map<string, number>();
  /** Paths leading to a mountpoint (their children may be mount roots). */
  private readonly ancestors = new Set<string>();
  /** Guest paths of the objects handed out on the way to a mountpoint, by ref. */
  private readonly pathOf = new Map<string, string>();
  private rootObject: Promise<LayerObject> | undefined;

  private constructor(
    private readonly parts: readonly ImageSource[],
    mounts: readonly GuestMount[],
    private readonly filesystemPath: string,
    overlayRules: boolean,
  ) {
    this.overlayRules = overlayRules;
    mounts.forEach((m, i) => {
      this.mountAt.set(m.path, i);
      const names = m.path.split('/').filter((c) => c !== '');
      for (let k = 0; k < names.length; k++) this.ancestors.add(`/${names.slice(0, k).join('/')}`);
    });
    this.identity = `guest:${mounts.map((m, i) => `${m.path}=${parts[i].identity}`).join('|')}:${filesystemPath}`;
  }

  /** Opens each filesystem of the guest's tree; `mounts` has "/" first. */
  static async open(options: ImageSourceOptions, mounts: readonly GuestMount[]): Promise<GuestSource> {
    const parts: ImageSource[] = [];
    try {
      for (const m of mounts) {
        parts.push(
          await ImageSource.open({
            ...options,
            partition: m.volume.partition,
            ...(m.volume.logicalVolume ? { logicalVolume: m.volume.logicalVolume } : {}),
            filesystemPath: m.filesystemPath,
            overlayRules: false,
          }),
        );
      }
    } catch (err) {
      await Promise.all(parts.map((p) => p.close()));
      throw err;
    }
    return new GuestSource(parts, mounts, options.filesystemPath ?? '/', options.overlayRules ?? false);
  }

  /** Real paths of every file the images read. */
  get files(): string[] {
    return [...new Set(this.parts.flatMap((p) => p.files))];
  }

  /** The real path of the image's direct backing file, if any. */
  get backingFile(): string | undefined {
    return this.parts[0].backingFile;
  }

  get filesystemType(): string {
    return this.parts[0].filesystemType;
  }

  get imageFormat(): string {
    return this.parts[0].imageFormat;
  }

  private outer(index: number, obj: LayerObject, path?: string): LayerObject {
    const ref = Buffer.from(`${index}:${obj.ref}`);
    if (path !== undefined && (this.ancestors.has(path) || this.mountAt.has(path))) this.pathOf.set(ref.toString('latin1'), path);
    return { layer: this, ref, st: obj.st };
  }

  private split(obj: LayerObject): { index: number; inner: LayerObject } {
    if (obj.layer !== this || !Buffer.isBuffer(obj.ref)) throw StrataError.io('object handed to the wrong layer source');
    const text = obj.ref.toString('latin1');
    const colon = text.indexOf(':');
    const index = Number(text.slice(0, colon));
    const handle = Number(text.slice(colon + 1));
    const part = this.parts[index];
    if (colon < 1 || part === undefined || !Number.isSafeInteger(handle)) throw StrataError.io(`object ref ${JSON.stringify(text)} names no filesystem of this guest`);
    return { index, inner: { layer: part, ref: handle, st: obj.st } };
  }

  root(): Promise<LayerObject> {
    this.rootObject ??= this.resolveRoot();
    const pending = this.rootObject;
    pending.catch(() => {
      if (this.rootObject === pending) this.rootObject = undefined;
    });
    return pending;
  }

  private async resolveRoot(): Promise<LayerObject> {
    let obj = this.outer(0, await this.parts[0].root(), '/');
    for (const name of splitPath(Buffer.from(this.filesystemPath))) {
      const next = await this.lookup(obj, name);
      if (!next) throw StrataError.notFound(`path ${this.filesystemPath} does not exist in the guest's tree`);
      if (!isDirStat(next.st)) throw StrataError.notDir(`path ${printable(Buffer.from(this.filesystemPath))} in the guest's tree is not a directory`);
      obj = next;
    }
    return obj;
  }

  async lookup(dir: LayerObject, name: Buffer): Promise<LayerObject | undefined> {
    const { index, inner } = this.split(dir);
    const dirPath = this.pathOf.get((dir.ref as Buffer).toString('latin1'));
    const childPath = dirPath === undefined ? undefined : joinPath(dirPath, name);
    const found = await this.parts[index].lookup(inner, name);
    if (childPath !== undefined) {
      const mounted = this.mountAt.get(childPath);
      // mount(2) needs a directory to mount on; without one the filesystem is not reachable, as in the guest.
      if (mounted !== undefined && found && isDirStat(found.st)) return this.outer(mounted, await this.parts[mounted].root(), childPath);
    }
    return found && this.outer(index, found, childPath);
  }

  list(dir: LayerObject): Promise<SourceDirent[]> {
    const { index, inner } = this.split(dir);
    return this.parts[index].list(inner);
  }

  async lookupMany(dir: LayerObject, names: readonly Buffer[]): Promise<(LayerObject | undefined)[]> {
    if (this.pathOf.has((dir.ref as Buffer).toString('latin1'))) {
      const out: (LayerObject | undefined)[] = [];
      for (const n of names) out.push(await this.lookup(dir, n));
      return out;
    }
    const { index, inner } = this.split(dir);
    return (await this.parts[index].lookupMany(inner, names)).map((o) => o && this.outer(index, o));
  }

  readlink(obj: LayerObject): Promise<Buffer> {
    const { index, inner } = this.split(obj);
    return this.parts[index].readlink(inner);
  }

  read(obj: LayerObject, offset: number, length: number): Promise<Buffer> {
    const { index, inner } = this.split(obj);
    return this.parts[index].read(inner, offset, length);
  }

  listXattrs(obj: LayerObject): Promise<string[]> {
    const { index, inner } = this.split(obj);
    return this.parts[index].listXattrs(inner);
  }

  getXattr(obj: LayerObject, name: string): Promise<Buffer | undefined> {
    const { index, inner } = this.split(obj);
    return this.parts[index].getXattr(inner, name);
  }

  /** The root filesystem's figures: what statfs(2) on the guest's "/" says. */
  statfs(): Promise<StatFs> {
    return this.parts[0].statfs();
  }

  locate(obj: LayerObject): Buffer {
    const { index, inner } = this.split(obj);
    return Buffer.concat([Buffer.from(`${index}:`), this.parts[index].locate(inner)]);
  }

  readLocated(location: Buffer, offset: number, length: number): Promise<Buffer> {
    const colon = location.indexOf(0x3a);
    const index = Number(location.subarray(0, colon).toString('latin1'));
    const part = this.parts[index];
    if (colon < 1 || part === undefined) return Promise.reject(new StrataError(Errno.EIO, 'cached location names no filesystem of this guest'));
    return part.readLocated(location.subarray(colon + 1), offset, length);
  }

  async close(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.close()));
  }
}
