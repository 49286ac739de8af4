import { labelText, uuidText } from '../text-fields';
import type { Signature } from './signature';

/** XFS: "XFSB" and a superblock geometry that holds together (libblkid xfs_verify_sb). */
export const xfsSignature: Signature = {
  name: 'xfs',
  async probe(r) {
    const sb = await r.at(0, 512);
    if (!sb || sb.toString('latin1', 0, 4) !== 'XFSB') return undefined;
    const blocksize = sb.readUInt32BE(4);
    const dblocks = sb.readBigUInt64BE(8);
    const rextsize = sb.readUInt32BE(80);
    const agcount = sb.readUInt32BE(88);
    const sectsize = sb.readUInt16BE(102);
    const inodesize = sb.readUInt16BE(104);
    const [blocklog, sectlog, inodelog, inopblog] = [sb[120], sb[121], sb[122], sb[123]];
    const imaxPct = sb[127];
    const rext = rextsize * blocksize;
    const sane =
      agcount > 0 &&
      sectsize >= 512 && sectsize <= 32768 && sectlog >= 9 && sectlog <= 15 && sectsize === 2 ** sectlog &&
      blocksize >= 512 && blocksize <= 65536 && blocklog >= 9 && blocklog <= 16 && blocksize === 2 ** blocklog &&
      inodesize >= 256 && inodesize <= 2048 && inodelog >= 8 && inodelog <= 11 && inodesize === 2 ** inodelog &&
      blocklog - inodelog === inopblog &&
      rext >= 4096 && rext <= 1024 * 1024 * 1024 &&
      imaxPct <= 100 &&
      dblocks !== 0n;
    if (!sane) return undefined;
    return {
      kind: 'filesystem',
      type: 'xfs',
      label: sb[108] !== 0 ? labelText(sb.subarray(108, 120)) : undefined,
      uuid: uuidText(sb.subarray(32, 48)),
    };
  },
};
