import type { Signature } from './signature';

const SECTOR = 2048;
const FIRST = 16;
/** Volume descriptors to look through for a UDF NSR descriptor. */
const MAX_DESCRIPTORS = 64;

/**
 * ISO 9660 ("CD001" in the volume descriptors from sector 16) and UDF (an
 * NSR02/NSR03 descriptor in the extended area). LABEL is the primary
 * volume descriptor's volume identifier.
 */
export const iso9660Signature: Signature = {
  name: 'iso9660',
  async probe(r) {
    let pvdLabel: string | undefined;
    let iso = false;
    let udf = false;
    for (let i = 0; i < MAX_DESCRIPTORS; i++) {
      const d = await r.at((FIRST + i) * SECTOR, SECTOR);
      if (!d) break;
      const id = d.toString('latin1', 1, 6);
      if (id === 'CD001') {
        iso = true;
        if (d[0] === 1 && pvdLabel === undefined) pvdLabel = d.toString('latin1', 40, 72).replace(/[\s\0]+$/, '');
        if (d[0] === 255) continue;
      } else if (id === 'NSR02' || id === 'NSR03') {
        udf = true;
        break;
      } else if (id !== 'BEA01' && id !== 'TEA01' && id !== 'BOOT2' && id !== 'CDW02') {
        break;
      }
    }
    if (udf) return { kind: 'filesystem', type: 'udf' };
    if (!iso) return undefined;
    return { kind: 'filesystem', type: 'iso9660', label: pvdLabel || undefined };
  },
};
