import { errorMessage } from '@strata/errors';
import type { ByteSource } from './byte-source';
import { guarded } from './errors';
import { readPhysicalVolume } from './physical-volume';
import { type PvWithSource, type VolumeGroup, assembleVolumeGroups } from './volume-group';

export interface ScanResult {
  volumeGroups: VolumeGroup[];
  /** Sources that carry an LVM2 label that could not be read, by the caller's name for them. */
  failures: { name: string; message: string; errno: number | undefined }[];
}

/**
 * Every VG on a set of sources (the partitions of a disk, several disks):
 * reads each one's PV label, skips those without one, keeps the error of
 * those whose label or metadata is unusable (the VG may still assemble from
 * the other PVs' copies), then assembles. `name` labels a source in
 * failures (e.g. "partition 3").
 */
export async function scanVolumeGroups(sources: readonly { name: string; source: ByteSource }[]): Promise<ScanResult> {
  return guarded('scanVolumeGroups', async () => {
    const found: PvWithSource[] = [];
    const failures: ScanResult['failures'] = [];
    for (const { name, source } of sources) {
      try {
        const pv = await readPhysicalVolume(source);
        if (pv) found.push({ source, pv });
      } catch (err) {
        const errno = typeof (err as { errno?: unknown }).errno === 'number' ? (err as { errno: number }).errno : undefined;
        failures.push({ name, message: errorMessage(err), errno });
      }
    }
    return { volumeGroups: assembleVolumeGroups(found), failures };
  });
}
