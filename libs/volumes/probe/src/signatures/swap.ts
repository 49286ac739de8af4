import type { Found } from '../probe-result';
import { labelText, uuidText } from '../text-fields';
import type { Signature } from './signature';

/** The magic sits in the last 10 bytes of the first page; pages of 4 to 64 KiB. */
const PAGE_SIZES = [4096, 8192, 16384, 32768, 65536];
const TOI_MAGIC = Buffer.from([0xed, 0xc3, 0x02, 0xe9, 0x98, 0x56, 0xe5, 0x0c]);
const SUSPEND: Record<string, string> = { S1SUSPEND: 's1suspend', S2SUSPEND: 's2suspend', ULSUSPEND: 'ulsuspend', LINHIB0001: 'linhib0001' };

/**
 * Linux swap (v0 "SWAP-SPACE", v1 "SWAPSPACE2" with label and uuid at
 * 1024) and hibernation images in a swap area (swsuspend).
 */
export const swapSignature: Signature = {
  name: 'swap',
  async probe(r) {
    if (r.size < 10 * 4096) return undefined;
    const head = await r.at(0, 8);
    if (!head) return undefined;
    for (const page of PAGE_SIZES) {
      const magic = await r.at(page - 10, 10);
      if (!magic) break;
      const m = magic.toString('latin1');
      if (m === 'SWAP-SPACE' || m === 'SWAPSPACE2') {
        if (head.equals(TOI_MAGIC)) return undefined;
        if (m === 'SWAP-SPACE') return { kind: 'swap', type: 'swap', version: '0' };
        return withHeader('swap', '1');
      }
      const suspend = SUSPEND[m] ?? SUSPEND[m.slice(0, 9)];
      if (suspend) return withHeader('swsuspend', suspend);
    }
    if (head.equals(TOI_MAGIC)) return withHeader('swsuspend', 'tuxonice');
    return undefined;

    async function withHeader(type: string, version: string): Promise<Found | undefined> {
      const h = await r.at(1024, 1024);
      if (!h) return undefined;
      if (version === '1') {
        const v = h.readUInt32LE(0);
        if (v !== 1 && h.readUInt32BE(0) !== 1) return undefined;
        if (h.readUInt32LE(4) === 0) return undefined;
      }
      const found: Found = { kind: 'swap', type, version };
      // libblkid's sanity check: label and uuid only when this padding is clear.
      if (h.readUInt32LE(44 + 32 * 4) === 0 && h.readUInt32LE(44 + 33 * 4) === 0) {
        if (h[28] !== 0) found.label = labelText(h.subarray(28, 44));
        found.uuid = uuidText(h.subarray(12, 28));
      }
      return found;
    }
  },
};
