import type { Found } from '../probe-result';
import { labelText, uuidText } from '../text-fields';
import type { Signature } from './signature';

interface Magic {
  type: string;
  kind: Found['kind'];
  offset: number;
  bytes: Buffer;
  detail?: string;
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Formats strata only names: a magic at a fixed offset is enough to say what it is. */
const MAGICS: Magic[] = [
  { type: 'BitLocker', kind: 'filesystem', offset: 0, bytes: b('\xeb\x52\x90-FVE-FS-'), detail: 'encrypted (BitLocker)' },
  { type: 'BitLocker', kind: 'filesystem', offset: 0, bytes: b('\xeb\x58\x90-FVE-FS-'), detail: 'encrypted (BitLocker)' },
  { type: 'apfs', kind: 'filesystem', offset: 32, bytes: b('NXSB') },
  { type: 'erofs', kind: 'filesystem', offset: 1024, bytes: b('\xe2\xe1\xf5\xe0') },
  { type: 'ReFS', kind: 'filesystem', offset: 0, bytes: b('\0\0\0ReFS\0') },
];

export const magicOnlySignature: Signature = {
  name: 'magic',
  async probe(r) {
    for (const m of MAGICS) {
      const got = await r.at(m.offset, m.bytes.length);
      if (got?.equals(m.bytes)) return { kind: m.kind, type: m.type, detail: m.detail };
    }
    return undefined;
  },
};

/** SquashFS: "hsqs" (little-endian) or "sqsh" (big-endian) at 0; versions before 4 are blkid's squashfs3. */
export const squashfsSignature: Signature = {
  name: 'squashfs',
  async probe(r) {
    const sb = await r.at(0, 32);
    if (!sb) return undefined;
    const magic = sb.toString('latin1', 0, 4);
    if (magic !== 'hsqs' && magic !== 'sqsh') return undefined;
    const le = magic === 'hsqs';
    const major = le ? sb.readUInt16LE(28) : sb.readUInt16BE(28);
    const minor = le ? sb.readUInt16LE(30) : sb.readUInt16BE(30);
    return { kind: 'filesystem', type: le && major >= 4 ? 'squashfs' : 'squashfs3', version: `${major}.${minor}` };
  },
};

/** F2FS: magic at 1 KiB; from version 1.1 on, UUID and a UTF-16 label (libblkid skips both for 1.0). */
export const f2fsSignature: Signature = {
  name: 'f2fs',
  async probe(r) {
    const sb = await r.at(1024, 0x7c + 1024);
    if (!sb || sb.readUInt32LE(0) !== 0xf2f52010) return undefined;
    const major = sb.readUInt16LE(4);
    const minor = sb.readUInt16LE(6);
    if (major === 1 && minor === 0) return { kind: 'filesystem', type: 'f2fs' };
    return {
      kind: 'filesystem',
      type: 'f2fs',
      version: `${major}.${minor}`,
      uuid: uuidText(sb.subarray(0x6c, 0x7c)),
      label: sb[0x7c] !== 0 ? labelText(sb.subarray(0x7c, 0x7c + 1024), 'utf16le') : undefined,
    };
  },
};
