import { type ByteSource, checkReadRange } from './byte-source';
import { guarded, guardedSync } from './errors';
import { SECTOR_BYTES, type VolumeGroup, logicalVolumeRefusal } from './volume-group';

/** One segment of the LV, in bytes. A linear segment is a striped one with one stripe. */
interface MappedSegment {
  start: number;
  length: number;
  /** Undefined for a "zero" segment (reads as zeros). */
  stripes: { source: ByteSource; offset: number }[] | undefined;
  /** Bytes per stripe chunk; the segment length for one stripe. */
  chunk: number;
}

interface Piece {
  at: number;
  length: number;
  source: ByteSource | undefined;
  offset: number;
}

function pieces(segments: readonly MappedSegment[], offset: number, length: number): Piece[] {
  const out: Piece[] = [];
  let lo = 0;
  let hi = segments.length - 1;
  // The segment holding `offset`: segments are contiguous and sorted.
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (segments[mid].start <= offset) lo = mid;
    else hi = mid - 1;
  }
  let pos = offset;
  const end = offset + length;
  for (let i = lo; pos < end && i < segments.length; i++) {
    const seg = segments[i];
    const segEnd = seg.start + seg.length;
    while (pos < end && pos < segEnd) {
      const rel = pos - seg.start;
      if (!seg.stripes) {
        const n = Math.min(end, segEnd) - pos;
        out.push({ at: pos - offset, length: n, source: undefined, offset: 0 });
        pos += n;
        continue;
      }
      const count = seg.stripes.length;
      // dm-stripe: chunk k of the segment is on stripe k mod N, row k div N of that stripe.
      const k = Math.floor(rel / seg.chunk);
      const within = rel - k * seg.chunk;
      const stripe = seg.stripes[k % count];
      const row = Math.floor(k / count);
      const n = Math.min(end - pos, seg.chunk - within, segEnd - pos);
      out.push({ at: pos - offset, length: n, source: stripe.source, offset: stripe.offset + row * seg.chunk + within });
      pos += n;
    }
  }
  return out;
}

/**
 * A ByteSource over an LV's extents: linear and striped segments (and "zero"
 * ones) mapped onto the PVs' sources. Anything else is refused as
 * `VolumeGroup.logicalVolumes[].reason` says: EOPNOTSUPP naming the type
 * (thin, RAID, mirror, cache, COW snapshot, VDO, integrity), EIO naming a
 * missing PV, EUCLEAN for impossible extents; ENOENT for no such LV.
 */
export function openLogicalVolume(vg: VolumeGroup, lvName: string): ByteSource {
  return guardedSync('openLogicalVolume', () => {
    const refused = logicalVolumeRefusal(vg, lvName);
    if (refused) throw refused;
    const lv = vg.metadata.logicalVolumes.find((l) => l.name === lvName);
    if (!lv) throw new Error('LV vanished'); // logicalVolumeRefusal answered ENOENT already
    const pvs = new Map(vg.physicalVolumes.map((p) => [p.key, p]));
    const segments: MappedSegment[] = lv.segments.map((seg) => {
      const start = seg.startExtent * vg.extentSize;
      const length = seg.extentCount * vg.extentSize;
      if (seg.type === 'zero') return { start, length, stripes: undefined, chunk: length };
      const stripes = seg.areas.map((a) => {
        const pv = pvs.get(a.name);
        if (!pv?.source) throw new Error(`unresolved ${a.name}`); // refusal checked every area
        return { source: pv.source, offset: pv.peStart + a.startExtent * vg.extentSize };
      });
      const chunk = stripes.length === 1 ? length : seg.stripeSize * SECTOR_BYTES;
      return { start, length, stripes, chunk };
    });
    const size = segments.reduce((n, s) => n + s.length, 0);
    const what = `LV ${vg.name}/${lvName}`;
    return {
      size,
      async read(offset: number, length: number): Promise<Buffer> {
        return guarded('read', async () => {
          checkReadRange(what, size, offset, length);
          const out = Buffer.alloc(length);
          const parts = pieces(segments, offset, length);
          await Promise.all(
            parts.map(async (p) => {
              if (!p.source) return;
              const got = await p.source.read(p.offset, p.length);
              got.copy(out, p.at, 0, p.length);
            }),
          );
          return out;
        });
      },
    };
  });
}
