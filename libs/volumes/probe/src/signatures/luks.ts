import type { Found } from '../probe-result';
import type { SignatureReader } from '../signature-reader';
import { cString, labelText } from '../text-fields';
import type { Signature } from './signature';

const MAGIC = Buffer.from('LUKS\xba\xbe', 'latin1');
const MAGIC_SECONDARY = Buffer.from('SKUL\xba\xbe', 'latin1');
/** Where a LUKS2 secondary header may be (libblkid luks.c). */
const SECONDARY = [0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000];

function attributes(h: Buffer): Found {
  const version = h.readUInt16BE(6);
  const found: Found = { kind: 'luks', type: 'crypto_LUKS', version: String(version), detail: `LUKS${version}` };
  found.uuid = cString(h.subarray(168, 208));
  if (version === 2) found.label = labelText(h.subarray(24, 72));
  return found;
}

async function header(r: SignatureReader, at: number, magic: Buffer): Promise<Found | undefined> {
  const h = await r.at(at, 512);
  return h && h.subarray(0, 6).equals(magic) ? attributes(h) : undefined;
}

/** LUKS1 and LUKS2 headers (a LUKS2 secondary header when the primary is gone). */
export const luksSignature: Signature = {
  name: 'luks',
  async probe(r) {
    const primary = await header(r, 0, MAGIC);
    if (primary) return primary;
    for (const at of SECONDARY) {
      const found = await header(r, at, MAGIC_SECONDARY);
      if (found) return found;
    }
    return undefined;
  },
};
