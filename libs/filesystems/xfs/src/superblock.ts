import { Errno, StrataError } from '@strata/errors';
import { crcMatches } from './checksum';
import { corrupt, readU64, unsupported } from './errors';

export const XFS_SB_MAGIC = 0x58465342; // 'XFSB'
const SB_CRC_OFFSET = 224;

const VERSION_NUMBITS = 0x000f;
const VERSION_DIRV2 = 0x2000;
const VERSION_BORG = 0x4000; // ascii-ci
const VERSION_MOREBITS = 0x8000;
const VERSION_NLINK = 0x0020;
const VERSION2_FTYPE = 0x0200;

export const Incompat = {
  FTYPE: 0x1,
  SPINODES: 0x2,
  META_UUID: 0x4,
  BIGTIME: 0x8,
  NEEDSREPAIR: 0x10,
  NREXT64: 0x20,
  EXCHRANGE: 0x40,
  PARENT: 0x80,
  METADIR: 0x100,
} as const;

/** Incompatible features this reader handles: everything else is refused by name. */
const KNOWN_INCOMPAT = Incompat.FTYPE | Incompat.SPINODES | Incompat.META_UUID | Incompat.BIGTIME | Incompat.NREXT64 | Incompat.EXCHRANGE | Incompat.PARENT;

const INCOMPAT_NAMES: [number, string][] = [[Incompat.METADIR, 'metadir']];

export interface Superblock {
  blockSize: number;
  blockLog: number;
  dblocks: number;
  rblocks: number;
  uuid: Buffer;
  /** The uuid stamped into v5 metadata: sb_meta_uuid with the META_UUID feature, else sb_uuid. */
  metaUuid: Buffer;
  logStart: number;
  rootIno: number;
  agBlocks: number;
  agCount: number;
  logBlocks: number;
  versionNum: number;
  sectSize: number;
  inodeSize: number;
  inodesPerBlock: number;
  label: string;
  inodeLog: number;
  inopbLog: number;
  agBlkLog: number;
  imaxPct: number;
  icount: number;
  ifree: number;
  fdblocks: number;
  dirBlkLog: number;
  /** Inode chunk alignment in blocks (sb_inoalignmt). */
  inoAlignMt: number;
  features2: number;
  incompat: number;
  roCompat: number;
  logIncompat: number;
  /** v5: CRCs on metadata, v3 inodes. */
  crc: boolean;
  ftype: boolean;
  /** v4 filesystems without the nlink bit have only version 1 inodes. */
  hasNlink: boolean;
}

function isPow2(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** Parses and checks the primary superblock (the first sector of the volume), as xfs_validate_sb_common does. */
export function parseSuperblock(raw: Buffer, volumeSize: number): Superblock {
  if (raw.length < 512 || raw.readUInt32BE(0) !== XFS_SB_MAGIC) {
    throw new StrataError(Errno.EINVAL, 'no XFS filesystem (bad magic)');
  }
  const what = 'superblock';
  const versionNum = raw.readUInt16BE(100);
  const version = versionNum & VERSION_NUMBITS;
  if (version !== 4 && version !== 5) throw unsupported(`superblock version ${version}`);
  const crc = version === 5;
  const sectSize = raw.readUInt16BE(102);
  if (!isPow2(sectSize) || sectSize < 512 || sectSize > 32768) throw corrupt(what, `sector size ${sectSize}`);
  if (crc) {
    if (raw.length < sectSize) throw corrupt(what, 'short');
    if (!crcMatches(raw, 0, sectSize, SB_CRC_OFFSET)) throw corrupt(what, 'bad CRC');
  }
  const blockSize = raw.readUInt32BE(4);
  const blockLog = raw[120];
  if (!isPow2(blockSize) || blockSize < 512 || blockSize > 65536 || 1 << blockLog !== blockSize) throw corrupt(what, `block size ${blockSize}`);
  const inodeSize = raw.readUInt16BE(104);
  const inodeLog = raw[122];
  if (!isPow2(inodeSize) || inodeSize < (crc ? 512 : 256) || inodeSize > 2048 || 1 << inodeLog !== inodeSize || inodeSize > blockSize) {
    throw corrupt(what, `inode size ${inodeSize}`);
  }
  const inodesPerBlock = raw.readUInt16BE(106);
  const inopbLog = raw[123];
  if (inodesPerBlock !== blockSize / inodeSize || 1 << inopbLog !== inodesPerBlock) throw corrupt(what, `${inodesPerBlock} inodes per block`);
  const agBlocks = raw.readUInt32BE(84);
  const agCount = raw.readUInt32BE(88);
  const agBlkLog = raw[124];
  if (agBlocks < 64 || agCount === 0 || agBlkLog > 31 || 2 ** agBlkLog < agBlocks || 2 ** (agBlkLog - 1) >= agBlocks) {
    throw corrupt(what, `allocation group geometry ${agCount} x ${agBlocks} blocks (log ${agBlkLog})`);
  }
  const dblocks = readU64(raw, 8, what);
  if (dblocks > agCount * agBlocks || dblocks <= (agCount - 1) * agBlocks) throw corrupt(what, `${dblocks} blocks do not fit ${agCount} groups of ${agBlocks}`);
  if (dblocks * blockSize > volumeSize) {
    throw new StrataError(Errno.EUCLEAN, `xfs: filesystem of ${dblocks * blockSize} bytes is larger than its volume (${volumeSize} bytes)`);
  }
  const features2 = versionNum & VERSION_MOREBITS ? raw.readUInt32BE(200) : 0;
  const incompat = crc ? raw.readUInt32BE(216) : 0;
  const roCompat = crc ? raw.readUInt32BE(212) : 0;
  const logIncompat = crc ? raw.readUInt32BE(220) : 0;
  if (!crc && !(versionNum & VERSION_DIRV2)) throw unsupported('version 1 directories (v4 without dirv2)');
  if (versionNum & VERSION_BORG) throw unsupported('feature ascii-ci (case-insensitive names)');
  // The kernel refuses to mount a filesystem xfs_repair left half repaired (EFSCORRUPTED).
  if (incompat & Incompat.NEEDSREPAIR) throw corrupt(what, 'the needsrepair flag is set (run xfs_repair)');
  for (const [bit, name] of INCOMPAT_NAMES) if (incompat & bit) throw unsupported(`feature ${name}`);
  const unknown = incompat & ~KNOWN_INCOMPAT;
  if (unknown) throw unsupported(`incompatible features 0x${unknown.toString(16)}`);
  if (raw[126] !== 0) throw corrupt(what, 'mkfs did not finish (sb_inprogress)');
  const rblocks = readU64(raw, 16, what);
  if (rblocks !== 0 || readU64(raw, 24, what) !== 0) throw unsupported('feature realtime device');
  const logStart = readU64(raw, 48, what);
  if (logStart === 0) throw unsupported('feature external log device');
  const dirBlkLog = raw[192];
  if (blockLog + dirBlkLog > 16) throw corrupt(what, `directory block log ${dirBlkLog}`);
  const uuid = Buffer.from(raw.subarray(32, 48));
  const metaUuid = crc && incompat & Incompat.META_UUID ? Buffer.from(raw.subarray(248, 264)) : uuid;
  const nul = raw.subarray(108, 120).indexOf(0);
  const label = raw.subarray(108, nul < 0 ? 120 : 108 + nul).toString('latin1');
  return {
    blockSize,
    blockLog,
    dblocks,
    rblocks,
    uuid,
    metaUuid,
    logStart,
    rootIno: readU64(raw, 56, what),
    agBlocks,
    agCount,
    logBlocks: raw.readUInt32BE(96),
    versionNum,
    sectSize,
    inodeSize,
    inodesPerBlock,
    label,
    inodeLog,
    inopbLog,
    agBlkLog,
    imaxPct: raw[127],
    icount: readU64(raw, 128, what),
    ifree: readU64(raw, 136, what),
    fdblocks: readU64(raw, 144, what),
    dirBlkLog,
    inoAlignMt: raw.readUInt32BE(180),
    features2,
    incompat,
    roCompat,
    logIncompat,
    crc,
    ftype: crc ? (incompat & Incompat.FTYPE) !== 0 : (features2 & VERSION2_FTYPE) !== 0,
    hasNlink: crc || (versionNum & VERSION_NLINK) !== 0,
  };
}

export function formatUuid(uuid: Buffer): string {
  const h = uuid.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
