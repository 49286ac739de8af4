import type { Signature } from './signature';

/**
 * A partition table, as blkid's PTTYPE says it: "gpt" (a protective MBR and
 * "EFI PART" at LBA 1, 512- or 4096-byte sectors), or "dos" (an MBR with
 * valid boot indicators and at least one entry).
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
        const h = await r.at(ss, 8);
        if (h?.toString('latin1') === 'EFI PART') return { kind: 'partition-table', type: 'gpt' };
      }
    }
    if (!entries.some((e) => e.type !== 0 && e.sectors !== 0)) return undefined;
    return { kind: 'partition-table', type: 'dos' };
  },
};
