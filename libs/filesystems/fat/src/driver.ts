import type { ByteSource, FilesystemDriver, FilesystemType } from '@strata/filesystem';
import { BOOT_SECTOR_BYTES, claimsFat, isExfat, parseBootSector } from './boot-sector';
import { Fat } from './fat';

/**
 * Offered to the prober. detect() says 'vfat' for a boot sector that names
 * a FAT type or whose parameter block passes the kernel's checks; exFAT is
 * not claimed.
 */
export const fatDriver: FilesystemDriver = {
  type: 'vfat',
  async detect(source: ByteSource): Promise<FilesystemType | undefined> {
    try {
      if (source.size < BOOT_SECTOR_BYTES) return undefined;
      const b = await source.read(0, BOOT_SECTOR_BYTES);
      if (isExfat(b)) return undefined;
      if (claimsFat(b)) return 'vfat';
      parseBootSector(b);
      return b[510] === 0x55 && b[511] === 0xaa ? 'vfat' : undefined;
    } catch {
      return undefined;
    }
  },
  open: (source, options) => Fat.open(source, options),
};
