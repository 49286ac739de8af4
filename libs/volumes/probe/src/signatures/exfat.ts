import { labelText, serialText } from '../text-fields';
import type { Signature } from './signature';

const ENTRY_LABEL = 0x83;

/** exFAT: "EXFAT   " at 3; UUID the volume serial ("ABCD-1234"), LABEL the root directory's label entry, VERSION the revision. */
export const exfatSignature: Signature = {
  name: 'exfat',
  async probe(r) {
    const bs = await r.at(0, 512);
    if (!bs || bs.toString('latin1', 3, 11) !== 'EXFAT   ') return undefined;
    const sectorShift = bs[0x6c];
    const clusterShift = bs[0x6d];
    if (sectorShift < 9 || sectorShift > 12 || clusterShift > 25 - sectorShift) return undefined;
    const sector = 2 ** sectorShift;
    const cluster = sector * 2 ** clusterShift;
    const heap = bs.readUInt32LE(0x58) * sector;
    const root = bs.readUInt32LE(0x60);
    let label: string | undefined;
    if (root >= 2) {
      // The label is among the first entries of the root directory: its first cluster is enough.
      const dir = await r.at(heap + (root - 2) * cluster, Math.min(cluster, 64 * 1024));
      for (let at = 0; dir && at + 32 <= dir.length; at += 32) {
        const type = dir[at];
        if (type === 0) break;
        if (type === ENTRY_LABEL) {
          const chars = Math.min(dir[at + 1], 11);
          label = labelText(dir.subarray(at + 2, at + 2 + chars * 2), 'utf16le');
          break;
        }
      }
    }
    return { kind: 'filesystem', type: 'exfat', label, uuid: serialText(bs.subarray(0x64, 0x68)), version: `${bs[0x69]}.${bs[0x68]}` };
  },
};
