import { btrfsDriver } from '@strata/btrfs';
import { ext4Driver } from '@strata/ext4';
import { fatDriver } from '@strata/fat';
import { ntfsDriver } from '@strata/ntfs';
import { xfsDriver } from '@strata/xfs';
import { Errno, StrataError } from '@strata/errors';
import type { ByteSource, Filesystem, FilesystemDriver, FilesystemOptions, FilesystemType } from '@strata/filesystem';

/** Every filesystem strata reads, in the order their signatures are tried (FAT last: its boot sector has no single magic). */
const DRIVERS: readonly FilesystemDriver[] = [ext4Driver, xfsDriver, btrfsDriver, ntfsDriver, fatDriver];

/** The filesystem whose signature the volume carries, undefined when no reader knows it. */
export async function detectFilesystem(volume: ByteSource): Promise<{ driver: FilesystemDriver; type: FilesystemType } | undefined> {
  for (const driver of DRIVERS) {
    const type = await driver.detect(volume).catch(() => undefined);
    if (type !== undefined) return { driver, type };
  }
  return undefined;
}

/**
 * Opens the filesystem on a volume with the reader its signature names.
 * `where` says which volume it is ("partition #2 of vm/x.raw") in errors.
 */
export async function openFilesystem(volume: ByteSource, where: string, options: FilesystemOptions): Promise<Filesystem> {
  const found = await detectFilesystem(volume);
  if (!found) throw new StrataError(Errno.EINVAL, `${where} holds no filesystem strata can read`);
  try {
    return await found.driver.open(volume, options);
  } catch (err) {
    if (err instanceof StrataError) throw new StrataError(err.errno, `${where}: ${err.message}`, { code: err.code, cause: err });
    throw err;
  }
}
