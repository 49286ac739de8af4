import type { Partition } from './partition';
import { MBR_EXTENDED_TYPES, MBR_LINUX } from './partition-types';
import type { ByteSource } from '../byte-source';

/** An MBR and each EBR is one 512-byte sector at the start of its logical sector. */
const MBR_BYTES = 512;
/** Linux's limit on partitions per disk bounds the EBR chain too. */
const MAX_LOGICAL = 256;

export interface MbrEntry {
  bootIndicator: number;
  type: number;
  startLba: number;
  sectors: number;
}

export function hasBootSignature(sector: Buffer): boolean {
  return sector.length >= 512 && sector[510] === 0x55 && sector[511] === 0xaa;
}

export function mbrEntries(sector: Buffer): MbrEntry[] {
  return [0, 1, 2, 3].map((i) => {
    const at = 446 + i * 16;
    return {
      bootIndicator: sector[at],
      type: sector[at + 4],
      startLba: sector.readUInt32LE(at + 8),
      sectors: sector.readUInt32LE(at + 12),
    };
  });
}

/** Adds a partition if it starts on the disk; one reaching past the end is truncated (as Linux does), with a warning. */
function place(
  out: Partition[],
  warnings: string[],
  diskSize: number,
  number: number,
  type: number,
  startLba: number,
  sectors: number,
  sectorSize: number,
  diskSignature: number,
): void {
  const start = startLba * sectorSize;
  let size = sectors * sectorSize;
  if (start >= diskSize) {
    warnings.push(`MBR partition ${number} starts at LBA ${startLba}, past the end of the disk; skipped`);
    return;
  }
  if (start + size > diskSize) {
    warnings.push(`MBR partition ${number} extends past the end of the disk; truncated`);
    size = diskSize - start;
  }
  const uuid = `${diskSignature.toString(16).padStart(8, '0')}-${number.toString(16).padStart(2, '0')}`;
  out.push({ number, start, size, scheme: 'mbr', type, name: '', uuid, linuxFilesystem: type === MBR_LINUX });
}

/**
 * Primaries keep slots 1-4; each extended partition's EBR chain yields
 * logicals numbered from 5. LBAs count in the disk's logical sectors, as the
 * kernel counts them (512 or 4096 bytes).
 */
export async function readMbr(disk: ByteSource, sector0: Buffer, warnings: string[], sectorSize = 512): Promise<Partition[]> {
  const out: Partition[] = [];
  const logicals: Partition[] = [];
  const primaries = mbrEntries(sector0);
  // The disk signature (NT disk id) that blkid's PARTUUID of an MBR partition starts with.
  const signature = sector0.readUInt32LE(440);
  let nextLogical = 5;
  for (const [i, p] of primaries.entries()) {
    if (p.sectors === 0) continue;
    place(out, warnings, disk.size, i + 1, p.type, p.startLba, p.sectors, sectorSize, signature);
    if (!MBR_EXTENDED_TYPES.has(p.type)) continue;

    const extStart = p.startLba;
    const seen = new Set<number>();
    let ebr = extStart;
    for (;;) {
      if (nextLogical - 5 >= MAX_LOGICAL) {
        warnings.push(`EBR chain longer than ${MAX_LOGICAL} entries; stopped`);
        break;
      }
      if (seen.has(ebr)) {
        warnings.push(`EBR chain loops back to LBA ${ebr}; stopped`);
        break;
      }
      seen.add(ebr);
      if (ebr * sectorSize + MBR_BYTES > disk.size) {
        warnings.push(`EBR at LBA ${ebr} is past the end of the disk; stopped`);
        break;
      }
      const sector = await disk.read(ebr * sectorSize, MBR_BYTES);
      if (!hasBootSignature(sector)) {
        warnings.push(`EBR at LBA ${ebr} has no 0x55AA signature; stopped`);
        break;
      }
      const [data, ...rest] = mbrEntries(sector);
      if (data.sectors !== 0 && !MBR_EXTENDED_TYPES.has(data.type)) {
        place(logicals, warnings, disk.size, nextLogical++, data.type, ebr + data.startLba, data.sectors, sectorSize, signature);
      }
      const link = rest.find((e) => e.sectors !== 0 && MBR_EXTENDED_TYPES.has(e.type));
      if (!link) break;
      ebr = extStart + link.startLba;
    }
  }
  return [...out, ...logicals];
}
