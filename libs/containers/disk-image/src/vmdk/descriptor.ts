import { Errno, StrataError } from '@strata/errors';

/** One extent line: `RW 20480 SPARSE "disk-s001.vmdk"`, `RW 4192256 FLAT "disk-flat.vmdk" 0`, `RW 100 ZERO`. */
export interface ExtentLine {
  access: 'RW' | 'RDONLY' | 'NOACCESS';
  sectors: number;
  type: string;
  file: string | undefined;
  /** FLAT/VMFS: where the extent starts in its file, in sectors. */
  offsetSectors: number;
}

export interface VmdkDescriptor {
  createType: string | undefined;
  /** Content ID: changes whenever the disk is written; a delta records its parent's. */
  cid: number | undefined;
  /** ffffffff (or absent) for a disk without a parent. */
  parentCid: string | undefined;
  parentFileNameHint: string | undefined;
  extents: ExtentLine[];
}

/** A descriptor never has more extents than this (a 2 TB twoGbMaxExtent disk has about 1000). */
const MAX_EXTENTS = 4096;
const EXTENT_LINE = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Za-z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$/;

/** Parses descriptor text (embedded in a sparse file, or a file of its own), decoded as UTF-8 (VMware writes encoding="UTF-8"; ASCII is the same). */
export function parseDescriptor(text: string, label: string): VmdkDescriptor {
  const values = new Map<string, string>();
  const extents: ExtentLine[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/\0.*$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const ext = EXTENT_LINE.exec(line);
    if (ext) {
      if (extents.length >= MAX_EXTENTS) throw StrataError.corrupt(`VMDK ${label}: descriptor with more than ${MAX_EXTENTS} extents`);
      const sectors = Number(ext[2]);
      const offsetSectors = ext[5] === undefined ? 0 : Number(ext[5]);
      if (!Number.isSafeInteger(sectors * 512) || !Number.isSafeInteger(offsetSectors * 512)) {
        throw StrataError.corrupt(`VMDK ${label}: extent line "${line}" has out-of-range numbers`);
      }
      extents.push({ access: ext[1] as ExtentLine['access'], sectors, type: ext[3].toUpperCase(), file: ext[4], offsetSectors });
      continue;
    }
    const kv = /^([A-Za-z0-9_.]+)\s*=\s*"?(.*?)"?\s*$/.exec(line);
    if (kv) values.set(kv[1], kv[2]);
  }
  if ([...values.keys()].some((k) => k.toLowerCase().startsWith('encryption.'))) {
    throw new StrataError(Errno.EOPNOTSUPP, `VMDK ${label}: encrypted disks are not supported (the descriptor has encryption keys)`);
  }
  return {
    createType: values.get('createType'),
    cid: hexCid(values.get('CID')),
    parentCid: values.get('parentCID'),
    parentFileNameHint: values.get('parentFileNameHint'),
    extents,
  };
}

/** A CID as qemu reads one (hex, 32 bits). */
export function hexCid(text: string | undefined): number | undefined {
  if (text === undefined || !/^[0-9a-fA-F]{1,8}$/.test(text)) return undefined;
  return parseInt(text, 16);
}

/** Whether the descriptor names a parent (a delta disk of a VMware snapshot chain). */
export function hasParent(d: VmdkDescriptor): boolean {
  // As qemu: the hint alone decides (parentCID is for consistency checks).
  return d.parentFileNameHint !== undefined && d.parentFileNameHint !== '';
}
