import { crc32 } from 'node:zlib';
import type { SignatureReader } from '../signature-reader';
import type { Signature } from './signature';

/** A GPT header that checks out: signature, a sane size, and its CRC-32. */
async function gptHeaderAt(r: SignatureReader, at: number, sectorSize: number): Promise<boolean> {
  const h = await r.at(at, sectorSize);
  if (!h || h.toString('latin1', 0, 8) !== 'EFI PART') return false;
  const size = h.readUInt32LE(12);
  if (size < 92 || size > sectorSize) return false;
  const copy = Buffer.from(h.subarray(0, size));
  copy.writeUInt32LE(0, 16);
  return crc32(copy) === h.readUInt32LE(16);
}

/**
 * A partition table, as blkid's PTTYPE says it: "gpt" (a protective MBR and
 * a valid GPT header at LBA 1 or the last LBA, 512- or 4096-byte sectors),
 * "PMBR" (a protective MBR without one), or "dos" (an MBR with valid boot
 * indicators and at least one entry).
 */
export const partitionTableSignature: Signature = {
  name: 'partition-table',
  async probe(r) {
    const mbr = await r.at(0, 512);
    if (!mbr || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return undefined;
    const entries = [0, 1, 2, 3].map((i) => ({ boot: mbr[446 + i * 16], type: mbr[446 + i * 16 + 4], sectors: mbr.readUInt32LE(446 + i * 16 + 12) }));
    if (entries.some((e) => e.boot !== 0 && e.boot !== 0x80)) return undefined;
    if (entries.some((e) => e.type === 0xee)) {
      for (const ss of [512, 4096]) {
        const last = Math.floor(r.size / ss) * ss - ss;
        if ((await gptHeaderAt(r, ss, ss)) || (last > ss && (await gptHeaderAt(r, last, ss)))) return { kind: 'partition-table', type: 'gpt' };
      }
      return { kind: 'partition-table', type: 'PMBR', detail: 'a protective MBR without a valid GPT' };
    }
    if (!entries.some((e) => e.type !== 0 && e.sectors !== 0)) return undefined;
    return { kind: 'partition-table', type: 'dos' };
  },
};
