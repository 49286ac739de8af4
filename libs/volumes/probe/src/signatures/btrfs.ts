import { labelText, uuidText } from '../text-fields';
import type { Signature } from './signature';

const SUPER = 0x10000;

/** btrfs: "_BHRfS_M" in the primary superblock at 64 KiB. UUID is the filesystem's, UUID_SUB this device's. */
export const btrfsSignature: Signature = {
  name: 'btrfs',
  async probe(r) {
    const sb = await r.at(SUPER, 4096);
    if (!sb || sb.toString('latin1', 0x40, 0x48) !== '_BHRfS_M') return undefined;
    return {
      kind: 'filesystem',
      type: 'btrfs',
      label: sb[0x12b] !== 0 ? labelText(sb.subarray(0x12b, 0x12b + 256)) : undefined,
      uuid: uuidText(sb.subarray(0x20, 0x30)),
      // dev_item at 0xc9; its uuid 66 bytes in.
      uuidSub: uuidText(sb.subarray(0xc9 + 66, 0xc9 + 82)),
    };
  },
};
