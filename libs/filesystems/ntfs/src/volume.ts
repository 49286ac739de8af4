import type { ByteSource, FsEvent } from '@strata/filesystem';
import { readExactly } from '@strata/filesystem';
import type { BootSector } from './boot-sector';
import { corrupt } from './errors';

/** What every structure reader needs: the bytes, the geometry and the event sink. */
export interface Volume {
  source: ByteSource;
  boot: BootSector;
  log: (event: FsEvent) => void;
}

/** `count` clusters from `lcn`, checked against the volume. */
export async function readClusters(vol: Volume, lcn: number, count: number, what: string): Promise<Buffer> {
  const cs = vol.boot.clusterSize;
  if (lcn < 0 || count < 0 || lcn + count > vol.boot.clusters) throw corrupt(what, `clusters ${lcn}+${count} lie outside the volume`);
  return readBytes(vol, lcn * cs, count * cs, what);
}

export async function readBytes(vol: Volume, offset: number, length: number, what: string): Promise<Buffer> {
  const buf = await readExactly(vol.source, offset, length, `ntfs: ${what}`);
  if (buf.length !== length) throw corrupt(what, `short read at ${offset} (image truncated?)`);
  return buf;
}
