import { AttrEntry } from './attr-entry';
import { corrupt } from './errors';

/** Attributes stored in the inode's attribute fork (xfs_attr_sf): a 4-byte header, then name/value entries. */
export function parseShortformAttrs(fork: Buffer, what: string): AttrEntry[] {
  if (fork.length < 4) throw corrupt(what, 'shortform header is truncated');
  const total = fork.readUInt16BE(0);
  const count = fork[2];
  if (total < 4 || total > fork.length) throw corrupt(what, `shortform size ${total}`);
  const out: AttrEntry[] = [];
  let pos = 4;
  for (let i = 0; i < count; i++) {
    if (pos + 3 > total) throw corrupt(what, `shortform entry ${i} is truncated`);
    const namelen = fork[pos];
    const valuelen = fork[pos + 1];
    const flags = fork[pos + 2];
    const next = pos + 3 + namelen + valuelen;
    if (namelen === 0 || next > total) throw corrupt(what, `shortform entry ${i} overruns the fork`);
    out.push({
      flags,
      name: Buffer.from(fork.subarray(pos + 3, pos + 3 + namelen)),
      value: Buffer.from(fork.subarray(pos + 3 + namelen, next)),
      valueLength: valuelen,
    });
    pos = next;
  }
  return out;
}
