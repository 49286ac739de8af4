import { unsupported } from '../errors';

const SECTOR = 512;
/** Replayed metadata kept in memory at most (a log holds far less; a hostile one must not exhaust memory). */
const MAX_OVERLAY_BYTES = 512 * 1024 * 1024;

/**
 * Sectors whose content comes from log recovery, not from the image: the
 * image is never written. Reads of the volume are patched with them.
 */
export class SectorOverlay {
  private readonly sectors = new Map<number, Buffer>();

  get size(): number {
    return this.sectors.size;
  }

  /** Stores `data` (a whole number of sectors) as the content at byte `offset` (sector-aligned). */
  write(offset: number, data: Buffer): void {
    for (let at = 0; at < data.length; at += SECTOR) {
      const sector = (offset + at) / SECTOR;
      if (!this.sectors.has(sector) && (this.sectors.size + 1) * SECTOR > MAX_OVERLAY_BYTES) {
        throw unsupported(`log recovery of more than ${MAX_OVERLAY_BYTES} bytes of metadata`);
      }
      this.sectors.set(sector, Buffer.from(data.subarray(at, at + SECTOR)));
    }
  }

  /** Whether recovery replaced any sector of bytes [offset, offset+length). */
  touches(offset: number, length: number): boolean {
    if (this.sectors.size === 0 || length <= 0) return false;
    const first = Math.floor(offset / SECTOR);
    const last = Math.floor((offset + length - 1) / SECTOR);
    if (last - first > this.sectors.size * 4) {
      for (const sector of this.sectors.keys()) if (sector >= first && sector <= last) return true;
      return false;
    }
    for (let sector = first; sector <= last; sector++) if (this.sectors.has(sector)) return true;
    return false;
  }

  /**
   * `buf` (read from byte `offset`) with the parts recovery replaced: a
   * patched copy, so a source's own buffers are never written to.
   */
  patch(offset: number, buf: Buffer): Buffer {
    if (this.sectors.size === 0 || buf.length === 0) return buf;
    const first = Math.floor(offset / SECTOR);
    const last = Math.floor((offset + buf.length - 1) / SECTOR);
    const hits: [number, Buffer][] = [];
    if (last - first > this.sectors.size * 4) {
      for (const [sector, data] of this.sectors) if (sector >= first && sector <= last) hits.push([sector, data]);
    } else {
      for (let sector = first; sector <= last; sector++) {
        const data = this.sectors.get(sector);
        if (data) hits.push([sector, data]);
      }
    }
    if (hits.length === 0) return buf;
    const out = Buffer.from(buf);
    for (const [sector, data] of hits) this.copy(sector, data, offset, out);
    return out;
  }

  private copy(sector: number, data: Buffer, offset: number, buf: Buffer): void {
    const at = sector * SECTOR - offset;
    const from = Math.max(0, -at);
    const to = Math.min(SECTOR, buf.length - at);
    if (to > from) data.copy(buf, at + from, from, to);
  }
}
