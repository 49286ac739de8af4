import { Errno, StrataError } from '@strata/errors';

/** 'QFI\xfb' */
export const QCOW2_MAGIC = 0x514649fb;

const INCOMPAT_DIRTY = 1n << 0n;
const INCOMPAT_CORRUPT = 1n << 1n;
const INCOMPAT_DATA_FILE = 1n << 2n;
const INCOMPAT_COMPRESSION = 1n << 3n;
const INCOMPAT_EXTENDED_L2 = 1n << 4n;
const INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTENDED_L2;

const EXT_END = 0x00000000;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_NAMES = 0x6803f857;

/** qemu refuses backing names longer than this; so do we. */
const MAX_BACKING_NAME = 1023;

/** The parts of a qcow2 header a reader needs, validated. */
export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  /** Virtual disk size. */
  size: number;
  l1Size: number;
  l1TableOffset: number;
  extendedL2: boolean;
  /** Backing file name exactly as stored (undefined: no backing file). */
  backingName: string | undefined;
  /** From the backing-file-format header extension, when present. */
  backingFormat: string | undefined;
  /** How compressed clusters are compressed. */
  compression: 'zlib' | 'zstd';
  /** Internal snapshots: count and table offset (validated when the table is read). */
  nbSnapshots: number;
  snapshotsOffset: number;
}

/** Reads more of the first cluster on demand: the header is followed by extensions of unknown total length. */
export type HeaderBytes = (length: number) => Promise<Buffer>;

function corrupt(label: string, what: string): StrataError {
  return StrataError.corrupt(`qcow2 ${label}: corrupt header: ${what}`);
}

function unsupported(label: string, what: string): StrataError {
  return new StrataError(Errno.EOPNOTSUPP, `qcow2 ${label}: ${what} is not supported`);
}

function u64(buf: Buffer, offset: number, label: string, field: string): number {
  const v = buf.readBigUInt64BE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(label, `${field} ${v} is out of range`);
  return Number(v);
}

/** Names of feature bits from the image's own feature name table, for error messages. */
function featureNames(table: Buffer | undefined, bits: bigint): string[] {
  const names: string[] = [];
  for (let bit = 0n; bit < 64n; bit++) {
    if (!(bits & (1n << bit))) continue;
    let name = `incompatible feature bit ${bit}`;
    if (table) {
      for (let o = 0; o + 48 <= table.length; o += 48) {
        if (table[o] === 0 && BigInt(table[o + 1]) === bit) {
          const raw = table.subarray(o + 2, o + 48);
          const end = raw.indexOf(0);
          name += ` ("${raw.subarray(0, end < 0 ? raw.length : end).toString('latin1')}")`;
        }
      }
    }
    names.push(name);
  }
  return names;
}

/**
 * Parses and validates the header of a qcow2 image. Refuses, with the feature
 * named, what this reader cannot read correctly (encryption, an external data
 * file, zstd, unknown incompatible features) rather than returning wrong bytes.
 */
export async function parseQcow2Header(bytes: HeaderBytes, fileSize: number, label: string): Promise<Qcow2Header> {
  let head = await bytes(Math.min(fileSize, 4096));
  if (head.length < 72) throw corrupt(label, `file of ${fileSize} bytes is too short for a header`);
  if (head.readUInt32BE(0) !== QCOW2_MAGIC) throw corrupt(label, 'bad magic');
  const version = head.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw unsupported(label, `qcow2 version ${version}`);
  const backingFileOffset = u64(head, 8, label, 'backing_file_offset');
  const backingFileSize = head.readUInt32BE(16);
  const clusterBits = head.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21) throw unsupported(label, `cluster_bits ${clusterBits} (cluster sizes 512 B to 2 MiB are)`);
  const clusterSize = 2 ** clusterBits;
  const size = u64(head, 24, label, 'size');
  const cryptMethod = head.readUInt32BE(32);
  const l1Size = head.readUInt32BE(36);
  const l1TableOffset = u64(head, 40, label, 'l1_table_offset');

  let headerLength = 72;
  let incompatible = 0n;
  let compressionType = 0;
  if (version === 3) {
    if (head.length < 104) throw corrupt(label, 'version 3 header is truncated');
    incompatible = head.readBigUInt64BE(72);
    headerLength = head.readUInt32BE(100);
    if (headerLength < 104 || headerLength % 8 !== 0 || headerLength > clusterSize) {
      throw corrupt(label, `header_length ${headerLength}`);
    }
  }

  // Everything below lives in the first cluster; read the rest of it only if needed.
  const firstCluster = Math.min(clusterSize, fileSize);
  const need = async (end: number): Promise<void> => {
    if (end > firstCluster) throw corrupt(label, 'header data runs past the first cluster');
    if (end > head.length) head = await bytes(firstCluster);
  };
  await need(headerLength);
  if (version === 3 && headerLength > 104) compressionType = head[104];

  let backingFormat: string | undefined;
  let featureTable: Buffer | undefined;
  let ext = headerLength;
  for (;;) {
    if (ext + 8 > firstCluster) break;
    await need(ext + 8);
    const type = head.readUInt32BE(ext);
    const len = head.readUInt32BE(ext + 4);
    if (type === EXT_END) break;
    const dataEnd = ext + 8 + len;
    await need(dataEnd);
    const data = head.subarray(ext + 8, dataEnd);
    if (type === EXT_BACKING_FORMAT) backingFormat = data.toString('latin1');
    else if (type === EXT_FEATURE_NAMES) featureTable = Buffer.from(data);
    ext = dataEnd + ((8 - (len % 8)) % 8);
  }

  const unknown = incompatible & ~INCOMPAT_KNOWN;
  if (unknown) throw unsupported(label, featureNames(featureTable, unknown).join(', '));
  if (cryptMethod !== 0) {
    throw unsupported(label, `encryption (crypt_method ${cryptMethod}${cryptMethod === 1 ? ', AES' : cryptMethod === 2 ? ', LUKS' : ''})`);
  }
  if (incompatible & INCOMPAT_DATA_FILE) throw unsupported(label, 'an external data file (incompatible feature bit 2)');
  if (incompatible & INCOMPAT_COMPRESSION) {
    if (compressionType === 0) throw corrupt(label, 'compression type bit set with compression_type zlib');
    if (compressionType !== 1) throw unsupported(label, `compression_type ${compressionType}`);
  } else if (compressionType !== 0) throw corrupt(label, `compression_type ${compressionType} without the compression type bit`);
  const extendedL2 = (incompatible & INCOMPAT_EXTENDED_L2) !== 0n;
  if (extendedL2 && clusterBits < 14) throw corrupt(label, `extended L2 entries with cluster_bits ${clusterBits} (< 14)`);

  let backingName: string | undefined;
  if (backingFileOffset !== 0 && backingFileSize !== 0) {
    if (backingFileSize > MAX_BACKING_NAME) throw corrupt(label, `backing file name of ${backingFileSize} bytes`);
    await need(backingFileOffset + backingFileSize);
    const raw = head.subarray(backingFileOffset, backingFileOffset + backingFileSize);
    if (raw.includes(0)) throw corrupt(label, 'backing file name contains a NUL byte');
    backingName = raw.toString('utf8');
  }

  const nbSnapshots = head.readUInt32BE(60);
  const snapshotsOffset = u64(head, 64, label, 'snapshots_offset');
  return {
    version,
    clusterBits,
    clusterSize,
    size,
    l1Size,
    l1TableOffset,
    extendedL2,
    backingName,
    backingFormat,
    compression: compressionType === 1 ? 'zstd' : 'zlib',
    nbSnapshots,
    snapshotsOffset,
  };
}
