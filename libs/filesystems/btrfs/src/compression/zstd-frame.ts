/**
 * The byte length of the zstd frame at the start of `src` (btrfs pads a
 * compressed extent to whole sectors after it, which a plain decoder reads
 * as a second, invalid frame), and its window size. Undefined when the
 * bytes are not a well-formed frame.
 */
export function zstdFrameInfo(src: Uint8Array): { length: number; windowSize: number } | undefined {
  if (src.length < 6 || src[0] !== 0x28 || src[1] !== 0xb5 || src[2] !== 0x2f || src[3] !== 0xfd) return undefined;
  const fhd = src[4];
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictFlag = fhd & 3;
  if (fhd & 8) return undefined;
  let at = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const wd = src[at++];
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  at += [0, 1, 2, 4][dictFlag];
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
  if (singleSegment && at + fcsBytes <= src.length) {
    let fcs = 0;
    for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + src[at + i];
    if (fcsFlag === 1) fcs += 256;
    windowSize = fcs;
  }
  at += fcsBytes;
  for (let blocks = 0; ; blocks++) {
    if (at + 3 > src.length || blocks > 1 << 16) return undefined;
    const h = src[at] | (src[at + 1] << 8) | (src[at + 2] << 16);
    at += 3;
    const last = h & 1;
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3) return undefined;
    at += type === 1 ? 1 : size;
    if (last) break;
  }
  if (checksum) at += 4;
  if (at > src.length) return undefined;
  return { length: at, windowSize };
}
