/**
 * The directory-index name hashes (legacy, half-MD4, TEA; each with the
 * signed-char and unsigned-char variants). Every value is kept as an
 * unsigned 32-bit integer with `>>> 0` after each step.
 */
export const DxHash = {
  LEGACY: 0,
  HALF_MD4: 1,
  TEA: 2,
  LEGACY_UNSIGNED: 3,
  HALF_MD4_UNSIGNED: 4,
  TEA_UNSIGNED: 5,
} as const;

const HTREE_EOF_32BIT = 0x7fffffff;

function charAt(name: Buffer, i: number, signed: boolean): number {
  const c = name[i];
  return signed && c >= 128 ? c - 256 : c;
}

function legacyHash(name: Buffer, signed: boolean): number {
  let hash0 = 0x12a3fe2d;
  let hash1 = 0x37abe8f9;
  for (let i = 0; i < name.length; i++) {
    let hash = (hash1 + ((hash0 ^ Math.imul(charAt(name, i, signed), 7152373)) >>> 0)) >>> 0;
    if (hash & 0x80000000) hash = (hash - 0x7fffffff) >>> 0;
    hash1 = hash0;
    hash0 = hash;
  }
  return (hash0 << 1) >>> 0;
}

/** Packs up to num*4 name bytes into num words, padded with a length-derived pattern. */
function str2hashbuf(name: Buffer, from: number, num: number, signed: boolean): number[] {
  let len = name.length - from;
  let pad = (len | (len << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  let val = pad;
  const out: number[] = [];
  if (len > num * 4) len = num * 4;
  for (let i = 0; i < len; i++) {
    val = (charAt(name, from + i, signed) + (val << 8)) >>> 0;
    if (i % 4 === 3) {
      out.push(val);
      val = pad;
    }
  }
  if (out.length < num) out.push(val);
  while (out.length < num) out.push(pad);
  return out;
}

function rol(x: number, s: number): number {
  return ((x << s) | (x >>> (32 - s))) >>> 0;
}

function halfMd4(buf: number[], inp: number[]): void {
  let [a, b, c, d] = buf;
  const F = (x: number, y: number, z: number): number => (z ^ (x & (y ^ z))) >>> 0;
  const G = (x: number, y: number, z: number): number => ((x & y) + ((x ^ y) & z)) >>> 0;
  const H = (x: number, y: number, z: number): number => (x ^ y ^ z) >>> 0;
  const K2 = 0x5a827999;
  const K3 = 0x6ed9eba1;
  const r = (f: (x: number, y: number, z: number) => number, w: number, x: number, y: number, z: number, k: number, s: number): number =>
    rol((w + f(x, y, z) + k) >>> 0, s);
  a = r(F, a, b, c, d, inp[0], 3);
  d = r(F, d, a, b, c, inp[1], 7);
  c = r(F, c, d, a, b, inp[2], 11);
  b = r(F, b, c, d, a, inp[3], 19);
  a = r(F, a, b, c, d, inp[4], 3);
  d = r(F, d, a, b, c, inp[5], 7);
  c = r(F, c, d, a, b, inp[6], 11);
  b = r(F, b, c, d, a, inp[7], 19);
  a = r(G, a, b, c, d, (inp[1] + K2) >>> 0, 3);
  d = r(G, d, a, b, c, (inp[3] + K2) >>> 0, 5);
  c = r(G, c, d, a, b, (inp[5] + K2) >>> 0, 9);
  b = r(G, b, c, d, a, (inp[7] + K2) >>> 0, 13);
  a = r(G, a, b, c, d, (inp[0] + K2) >>> 0, 3);
  d = r(G, d, a, b, c, (inp[2] + K2) >>> 0, 5);
  c = r(G, c, d, a, b, (inp[4] + K2) >>> 0, 9);
  b = r(G, b, c, d, a, (inp[6] + K2) >>> 0, 13);
  a = r(H, a, b, c, d, (inp[3] + K3) >>> 0, 3);
  d = r(H, d, a, b, c, (inp[7] + K3) >>> 0, 9);
  c = r(H, c, d, a, b, (inp[2] + K3) >>> 0, 11);
  b = r(H, b, c, d, a, (inp[6] + K3) >>> 0, 15);
  a = r(H, a, b, c, d, (inp[1] + K3) >>> 0, 3);
  d = r(H, d, a, b, c, (inp[5] + K3) >>> 0, 9);
  c = r(H, c, d, a, b, (inp[0] + K3) >>> 0, 11);
  b = r(H, b, c, d, a, (inp[4] + K3) >>> 0, 15);
  buf[0] = (buf[0] + a) >>> 0;
  buf[1] = (buf[1] + b) >>> 0;
  buf[2] = (buf[2] + c) >>> 0;
  buf[3] = (buf[3] + d) >>> 0;
}

function tea(buf: number[], inp: number[]): void {
  let sum = 0;
  let b0 = buf[0];
  let b1 = buf[1];
  const [a, b, c, d] = inp;
  for (let n = 0; n < 16; n++) {
    sum = (sum + 0x9e3779b9) >>> 0;
    b0 = (b0 + ((((b1 << 4) + a) >>> 0) ^ ((b1 + sum) >>> 0) ^ (((b1 >>> 5) + b) >>> 0))) >>> 0;
    b1 = (b1 + ((((b0 << 4) + c) >>> 0) ^ ((b0 + sum) >>> 0) ^ (((b0 >>> 5) + d) >>> 0))) >>> 0;
  }
  buf[0] = (buf[0] + b0) >>> 0;
  buf[1] = (buf[1] + b1) >>> 0;
}

/** The major hash ext4 indexes `name` under (low bit clear). */
export function dirHash(name: Buffer, version: number, seed: readonly number[]): number {
  const buf = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
  if (seed.some((w) => w !== 0)) for (let i = 0; i < 4; i++) buf[i] = seed[i] >>> 0;
  let hash: number;
  switch (version) {
    case DxHash.LEGACY:
    case DxHash.LEGACY_UNSIGNED:
      hash = legacyHash(name, version === DxHash.LEGACY);
      break;
    case DxHash.HALF_MD4:
    case DxHash.HALF_MD4_UNSIGNED: {
      const signed = version === DxHash.HALF_MD4;
      for (let p = 0; p < name.length; p += 32) halfMd4(buf, str2hashbuf(name, p, 8, signed));
      hash = buf[1];
      break;
    }
    case DxHash.TEA:
    case DxHash.TEA_UNSIGNED: {
      const signed = version === DxHash.TEA;
      for (let p = 0; p < name.length; p += 16) tea(buf, str2hashbuf(name, p, 4, signed));
      hash = buf[0];
      break;
    }
    default:
      throw new RangeError(`unknown directory hash version ${version}`);
  }
  hash = (hash & ~1) >>> 0;
  if (hash === ((HTREE_EOF_32BIT << 1) >>> 0)) hash = ((HTREE_EOF_32BIT - 1) << 1) >>> 0;
  return hash;
}
