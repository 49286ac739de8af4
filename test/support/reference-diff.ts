import * as fs from 'node:fs';
import { getXattr, listXattrs } from '@strata/traversal';
import { kernelListing } from './kernel-overlay';

/**
 * An independent, deliberately naive implementation of the diff rules over
 * two kernel mounts (containerd/continuity's double walk): used as the
 * expected answer for the engine's diff.
 */
export function referenceDiff(fromMount: string, toMount: string): string[] {
  const out: string[] = [];
  const a = Buffer.from(fromMount);
  const b = Buffer.from(toMount);
  const line = (kind: string, rel: Buffer): string => `${kind} ${JSON.stringify(rel.toString('latin1'))}`;
  const lst = (p: Buffer): fs.BigIntStats | undefined => {
    try {
      return fs.lstatSync(p, { bigint: true });
    } catch {
      return undefined;
    }
  };
  const list = (p: Buffer): Buffer[] => kernelListing(p).sort(Buffer.compare);
  const xattrs = (p: Buffer): string =>
    listXattrs(p)
      .sort()
      .map((n) => `${n}=${getXattr(p, n)?.toString('hex')}`)
      .join(',');
  const same = (pa: Buffer, sa: fs.BigIntStats, pb: Buffer, sb: fs.BigIntStats): boolean => {
    if (sa.mode !== sb.mode || sa.uid !== sb.uid || sa.gid !== sb.gid) return false;
    if ((sa.isCharacterDevice() || sa.isBlockDevice()) && sa.rdev !== sb.rdev) return false;
    if (xattrs(pa) !== xattrs(pb)) return false;
    if (sa.isDirectory()) return true;
    if (sa.size !== sb.size) return false;
    const NS = 1_000_000_000n;
    if (sa.mtimeNs / NS !== sb.mtimeNs / NS) return false;
    if (sa.mtimeNs % NS === 0n && sb.mtimeNs % NS === 0n) {
      if (sa.isSymbolicLink()) return fs.readlinkSync(pa, 'buffer').equals(fs.readlinkSync(pb, 'buffer'));
      if (!sa.isFile()) return true;
      return fs.readFileSync(pa).equals(fs.readFileSync(pb));
    }
    return sa.mtimeNs % NS === sb.mtimeNs % NS;
  };
  const child = (base: Buffer, rel: Buffer): Buffer => Buffer.concat([base, rel]);
  const relOf = (rel: Buffer, name: Buffer): Buffer => Buffer.concat([rel.length === 1 ? rel : Buffer.concat([rel, Buffer.from('/')]), name]);
  const added = (rel: Buffer): void => {
    out.push(line('added', rel));
    const p = child(b, rel);
    if (lst(p)?.isDirectory()) for (const n of list(p)) added(relOf(rel, n));
  };
  const visit = (rel: Buffer, isRoot: boolean): void => {
    const pa = rel.length === 1 ? a : child(a, rel);
    const pb = rel.length === 1 ? b : child(b, rel);
    const sa = lst(pa);
    const sb = lst(pb);
    if (!sa && !sb) return;
    if (!sa) return added(rel);
    if (!sb) {
      out.push(line('deleted', rel));
      return;
    }
    if (!isRoot && !same(pa, sa, pb, sb)) out.push(line('modified', rel));
    if (sa.isDirectory() && sb.isDirectory()) {
      const names = new Map<string, Buffer>();
      for (const n of [...list(pa), ...list(pb)]) names.set(n.toString('latin1'), n);
      for (const n of [...names.values()].sort(Buffer.compare)) visit(relOf(rel, n), false);
    } else if (sb.isDirectory()) {
      for (const n of list(pb)) added(relOf(rel, n));
    }
  };
  visit(Buffer.from('/'), true);
  return out;
}
