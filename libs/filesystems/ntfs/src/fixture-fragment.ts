/**
 * Test support: a file fragmented cluster by cluster, as a long-used
 * volume fragments one. ntfs-3g hands out clusters in no simple order, so
 * the volume is filled with one-cluster files, this reader finds where each
 * landed, every other cluster is freed, and a large file written last can
 * only take the isolated free clusters: its runlist has a run per cluster
 * and spills over extension records through an $ATTRIBUTE_LIST.
 */
import * as fs from 'node:fs';
import path from 'node:path';
import { AttrType } from './attribute';
import { parseBootSector } from './boot-sector';
import { findAttr, loadInode } from './inode';
import { Mft } from './mft';
import { Ntfs } from './ntfs';
import { withNtfs3g } from './fixture-image';
import type { ByteSource } from '@strata/filesystem';

class ImageSource implements ByteSource {
  constructor(private readonly img: Buffer) {}
  get size(): number {
    return this.img.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    return Buffer.from(this.img.subarray(offset, offset + length));
  }
}

/** Fills `image` (no other content needed) and writes `/fragmented`; returns its size in bytes. */
export async function writeFragmentedFile(image: string): Promise<number> {
  const cluster = 4096;
  await withNtfs3g(image, 'rw', (mnt) => {
    fs.mkdirSync(path.join(mnt, 'fill'));
    const one = Buffer.alloc(cluster, 0x66);
    for (let i = 0; ; i++) {
      try {
        fs.writeFileSync(path.join(mnt, 'fill', `f${i}`), one);
      } catch {
        fs.rmSync(path.join(mnt, 'fill', `f${i}`), { force: true });
        break;
      }
    }
  });
  const source = new ImageSource(fs.readFileSync(image));
  const reader = await Ntfs.open(source);
  const fill = (await reader.lookup(reader.rootHandle, Buffer.from('fill')))!;
  const boot = parseBootSector(await source.read(0, 512), source.size);
  const vol = { source, boot, log: (): void => undefined };
  const mft = await Mft.open(vol, 1 << 20);
  const freed: string[] = [];
  for (const e of await reader.readdir(fill)) {
    const data = findAttr(await loadInode(vol, mft, e.handle), AttrType.DATA);
    const lcn = data?.runs[0]?.lcn;
    if (lcn !== undefined && lcn % 2 === 0) freed.push(e.name.toString());
  }
  let written = 0;
  await withNtfs3g(image, 'rw', (mnt) => {
    for (const name of freed) fs.unlinkSync(path.join(mnt, 'fill', name));
    const fd = fs.openSync(path.join(mnt, 'fragmented'), 'w');
    try {
      for (let i = 0; ; i++) {
        const chunk = Buffer.alloc(cluster, i & 0xff);
        chunk.writeUInt32LE(i, 0);
        try {
          fs.writeSync(fd, chunk);
        } catch {
          break;
        }
        written += cluster;
      }
    } finally {
      fs.closeSync(fd);
    }
  });
  return written;
}

/** How the file's unnamed $DATA is laid out: runs, and the records holding its extents. */
export async function dataLayout(image: string, name: string): Promise<{ runs: number; extentRecords: number }> {
  const source = new ImageSource(fs.readFileSync(image));
  const reader = await Ntfs.open(source);
  const n = (await reader.lookup(reader.rootHandle, Buffer.from(name)))!;
  const boot = parseBootSector(await source.read(0, 512), source.size);
  const vol = { source, boot, log: (): void => undefined };
  const ino = await loadInode(vol, await Mft.open(vol, 1 << 20), n);
  const extents = ino.attributes.filter((a) => a.type === AttrType.DATA && a.name.length === 0);
  return { runs: findAttr(ino, AttrType.DATA)?.runs.length ?? 0, extentRecords: extents.length };
}
