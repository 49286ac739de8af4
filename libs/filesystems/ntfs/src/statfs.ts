import type { FsStatFs } from '@strata/filesystem';
import { AttrData, readAttr } from './attr-data';
import { corrupt } from './errors';
import type { Volume } from './volume';

/** NTFS_MAX_NAME_LEN. */
const NAMEMAX = 255;
const CHUNK = 1 << 20;
const SLACK = 1 << 20;

/** Zero bits over a bitmap attribute's data, read in bounded chunks. */
export async function freeBits(vol: Volume, bitmap: AttrData): Promise<number> {
  let free = 0;
  for (let pos = 0; pos < bitmap.dataSize; pos += CHUNK) {
    const b = await readAttr(vol, bitmap, pos, CHUNK);
    for (const byte of b) free += 8 - POPCOUNT[byte];
  }
  return free;
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0;
  for (let v = i; v; v >>= 1) n += v & 1;
  return n;
});

/** ntfs_fuse_statfs: clusters from the boot sector, free space from $Bitmap, inodes from $MFT's bitmap. */
export async function computeStatFs(vol: Volume, clusterBitmap: AttrData, mftBitmap: AttrData, mftRecords: number): Promise<FsStatFs> {
  const { boot } = vol;
  // ntfs-3g counts every byte of both bitmaps; sizes far past what the volume needs are damage, not a reason to read gigabytes.
  if (clusterBitmap.dataSize > Math.ceil(boot.clusters / 8) + SLACK) throw corrupt('$Bitmap', `${clusterBitmap.dataSize} bytes for ${boot.clusters} clusters`);
  if (mftBitmap.dataSize > Math.ceil(mftRecords / 8) + SLACK) throw corrupt('$MFT bitmap', `${mftBitmap.dataSize} bytes for ${mftRecords} records`);
  const freeClusters = await freeBits(vol, clusterBitmap);
  const freeMft = (await freeBits(vol, mftBitmap)) + (mftBitmap.rawAllocatedSize - mftBitmap.dataSize) * 8;
  const deltaBits = Math.log2(boot.clusterSize) - Math.log2(boot.mftRecordSize);
  const recordsInFree = deltaBits >= 0 ? freeClusters * 2 ** deltaBits : Math.floor(freeClusters / 2 ** -deltaBits);
  return {
    bsize: boot.clusterSize,
    frsize: boot.clusterSize,
    blocks: boot.clusters,
    bfree: freeClusters,
    bavail: freeClusters,
    files: mftBitmap.rawAllocatedSize * 8 + recordsInFree,
    ffree: recordsInFree + freeMft,
    namemax: NAMEMAX,
  };
}
