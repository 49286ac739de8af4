/**
 * Test support: NTFS structures built from the format description (MFT
 * records with update sequence arrays, attributes, mapping pairs, file
 * names, index roots), for unit tests and for small synthetic volumes
 * holding what mkntfs and ntfs-3g do not write (an $MFT spread over
 * extension records).
 */

/** Puts an update sequence array (USN 0x1234) at 0x30 and protects every 512-byte stride. */
export function protect(body: Buffer, magic = 'FILE'): Buffer {
  const r = Buffer.from(body);
  r.write(magic, 0, 'latin1');
  r.writeUInt16LE(0x30, 4);
  r.writeUInt16LE(r.length / 512 + 1, 6);
  r.writeUInt16LE(0x1234, 0x30);
  for (let i = 0; i < r.length / 512; i++) {
    const end = (i + 1) * 512 - 2;
    r.writeUInt16LE(r.readUInt16LE(end), 0x32 + 2 * i);
    r.writeUInt16LE(0x1234, end);
  }
  return r;
}

export interface RecordOptions {
  /** 1 in use, 2 directory. */
  flags?: number;
  base?: number;
  linkCount?: number;
  size?: number;
}

/** An MFT record holding the given attribute records, END-terminated and protected. */
export function mftRecord(attrs: Buffer[], o: RecordOptions = {}): Buffer {
  const r = Buffer.alloc(o.size ?? 1024);
  r.writeUInt16LE(1, 0x10);
  r.writeUInt16LE(o.linkCount ?? 1, 0x12);
  r.writeUInt16LE(0x38, 0x14);
  r.writeUInt16LE(o.flags ?? 1, 0x16);
  r.writeBigUInt64LE(BigInt(o.base ?? 0), 0x20);
  let at = 0x38;
  for (const a of attrs) {
    a.copy(r, at);
    at += a.length;
  }
  r.writeUInt32LE(0xffffffff, at);
  r.writeUInt32LE(at + 8, 0x18);
  r.writeUInt32LE(r.length, 0x1c);
  return protect(r);
}

export function residentAttr(type: number, value: Buffer, name = '', instance = 0): Buffer {
  const n = Buffer.from(name, 'utf16le');
  const valueOffset = (0x18 + n.length + 7) & ~7;
  const a = Buffer.alloc((valueOffset + value.length + 7) & ~7);
  a.writeUInt32LE(type, 0);
  a.writeUInt32LE(a.length, 4);
  a[9] = n.length / 2;
  a.writeUInt16LE(0x18, 10);
  a.writeUInt16LE(instance, 14);
  n.copy(a, 0x18);
  a.writeUInt32LE(value.length, 16);
  a.writeUInt16LE(valueOffset, 20);
  value.copy(a, valueOffset);
  return a;
}

export interface NonResidentOptions {
  lowestVcn?: number;
  highestVcn: number;
  allocatedSize: number;
  dataSize: number;
  initializedSize?: number;
  /** Attribute flags: 0x0001 compressed, 0x4000 encrypted, 0x8000 sparse. */
  flags?: number;
  compressedSize?: number;
  compressionUnit?: number;
  instance?: number;
  name?: string;
}

export function nonResidentAttr(type: number, pairs: Buffer, o: NonResidentOptions): Buffer {
  const n = Buffer.from(o.name ?? '', 'utf16le');
  const headerLength = o.compressedSize !== undefined ? 0x48 : 0x40;
  const pairsAt = (headerLength + n.length + 7) & ~7;
  const a = Buffer.alloc((pairsAt + pairs.length + 7) & ~7);
  a.writeUInt32LE(type, 0);
  a.writeUInt32LE(a.length, 4);
  a[8] = 1;
  a[9] = n.length / 2;
  a.writeUInt16LE(headerLength, 10);
  a.writeUInt16LE(o.flags ?? 0, 12);
  a.writeUInt16LE(o.instance ?? 0, 14);
  a.writeBigInt64LE(BigInt(o.lowestVcn ?? 0), 0x10);
  a.writeBigInt64LE(BigInt(o.highestVcn), 0x18);
  a.writeUInt16LE(pairsAt, 0x20);
  a[0x22] = o.compressionUnit ?? 0;
  a.writeBigInt64LE(BigInt(o.allocatedSize), 0x28);
  a.writeBigInt64LE(BigInt(o.dataSize), 0x30);
  a.writeBigInt64LE(BigInt(o.initializedSize ?? o.dataSize), 0x38);
  if (o.compressedSize !== undefined) a.writeBigInt64LE(BigInt(o.compressedSize), 0x40);
  n.copy(a, headerLength);
  pairs.copy(a, pairsAt);
  return a;
}

function signedBytes(v: number): Buffer {
  for (let n = 1; n <= 8; n++) {
    const lim = 2n ** BigInt(8 * n - 1);
    if (BigInt(v) >= -lim && BigInt(v) < lim) {
      const b = Buffer.alloc(n);
      let x = BigInt.asUintN(8 * n, BigInt(v));
      for (let i = 0; i < n; i++, x >>= 8n) b[i] = Number(x & 0xffn);
      return b;
    }
  }
  throw new Error(`${v} does not fit 8 bytes`);
}

/** Mapping pairs for runs of [length, lcn] (lcn null: a hole), LCN deltas computed here. */
export function mappingPairs(runs: [number, number | null][]): Buffer {
  const out: Buffer[] = [];
  let prev = 0;
  for (const [length, lcn] of runs) {
    const len = signedBytes(length);
    const ofs = lcn === null ? Buffer.alloc(0) : signedBytes(lcn - prev);
    if (lcn !== null) prev = lcn;
    out.push(Buffer.from([(ofs.length << 4) | len.length]), len, ofs);
  }
  out.push(Buffer.alloc(1));
  return Buffer.concat(out);
}

export function standardInformation(time: bigint, fileAttributes = 0): Buffer {
  const v = Buffer.alloc(72);
  for (let i = 0; i < 4; i++) v.writeBigInt64LE(time, 8 * i);
  v.writeUInt32LE(fileAttributes, 0x20);
  return v;
}

/** A $FILE_NAME value (attribute or index key). */
export function fileName(parent: number, name: string, namespace = 1, fileAttributes = 0): Buffer {
  const n = Buffer.from(name, 'utf16le');
  const k = Buffer.alloc(0x42 + n.length);
  k.writeBigUInt64LE(BigInt(parent), 0);
  k.writeUInt32LE(fileAttributes, 0x38);
  k[0x40] = name.length;
  k[0x41] = namespace;
  n.copy(k, 0x42);
  return k;
}

/** One index entry (a key, or the END entry when key is undefined), optionally pointing to a child block. */
export function indexEntry(record: number, key: Buffer | undefined, child?: number): Buffer {
  const len = (16 + (key?.length ?? 0) + 7) & ~7;
  const e = Buffer.alloc(len + (child === undefined ? 0 : 8));
  e.writeBigUInt64LE(BigInt(record), 0);
  e.writeUInt16LE(e.length, 8);
  e.writeUInt16LE(key?.length ?? 0, 10);
  e.writeUInt16LE((key ? 0 : 2) | (child === undefined ? 0 : 1), 12);
  key?.copy(e, 16);
  if (child !== undefined) e.writeBigInt64LE(BigInt(child), e.length - 8);
  return e;
}

/** An index header followed by its entries. */
export function indexNode(entries: Buffer[]): Buffer {
  const body = Buffer.concat(entries);
  const header = Buffer.alloc(16);
  header.writeUInt32LE(16, 0);
  header.writeUInt32LE(16 + body.length, 4);
  header.writeUInt32LE(16 + body.length, 8);
  return Buffer.concat([header, body]);
}

/** An $INDEX_ROOT value of $I30 over file names, with 4 KiB index blocks. */
export function indexRoot(entries: Buffer[]): Buffer {
  const head = Buffer.alloc(16);
  head.writeUInt32LE(0x30, 0);
  head.writeUInt32LE(1, 4);
  head.writeUInt32LE(4096, 8);
  head[12] = 1;
  return Buffer.concat([head, indexNode(entries)]);
}

/** An $ATTRIBUTE_LIST entry. */
export function attrListEntry(type: number, lowestVcn: number, record: number, instance: number, name = ''): Buffer {
  const n = Buffer.from(name, 'utf16le');
  const e = Buffer.alloc((0x1a + n.length + 7) & ~7);
  e.writeUInt32LE(type, 0);
  e.writeUInt16LE(e.length, 4);
  e[6] = n.length / 2;
  e[7] = 0x1a;
  e.writeBigInt64LE(BigInt(lowestVcn), 8);
  e.writeBigUInt64LE(BigInt(record) | (1n << 48n), 0x10);
  e.writeUInt16LE(instance, 0x18);
  n.copy(e, 0x1a);
  return e;
}
