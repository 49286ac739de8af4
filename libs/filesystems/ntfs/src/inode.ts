import { Errno, StrataError } from '@strata/errors';
import { AttrData, mergeExtents, readAttr } from './attr-data';
import { Attribute, AttrType, sameName } from './attribute';
import { MAX_ATTRIBUTE_LIST, parseAttributeList } from './attribute-list';
import { corrupt } from './errors';
import { FileName, parseFileName } from './file-name';
import type { Mft } from './mft';
import { RecordFlag } from './mft-record';
import { StandardInformation, parseStandardInformation } from './standard-information';
import type { Volume } from './volume';

/** A file: its base record and every attribute extent, wherever its attribute list put them. */
export interface Inode {
  number: number;
  linkCount: number;
  isDirectory: boolean;
  si: StandardInformation;
  attributes: Attribute[];
}

/** Extension records one file may use (each holds at least one attribute of at least 24 bytes). */
const MAX_EXTENSION_RECORDS = MAX_ATTRIBUTE_LIST / 0x1a;

export async function loadInode(vol: Volume, mft: Mft, n: number): Promise<Inode> {
  const what = `MFT record ${n}`;
  const base = await mft.record(n);
  if (!(base.flags & RecordFlag.IN_USE)) throw new StrataError(Errno.ENOENT, `ntfs: MFT record ${n} is not in use`);
  if (base.baseRecord !== 0) throw corrupt(what, `an extension record of ${base.baseRecord}, not a file`);
  let attributes = base.attributes;
  const list = base.attributes.find((a) => a.type === AttrType.ATTRIBUTE_LIST);
  if (list) {
    const value = list.value ?? (await readAttr(vol, mergeExtents([list], `${what} attribute list`), 0, MAX_ATTRIBUTE_LIST + 1));
    const entries = parseAttributeList(value, `${what} attribute list`);
    attributes = [];
    const records = new Map<number, Attribute[]>([[n, base.attributes]]);
    for (const e of entries) {
      let attrs = records.get(e.record);
      if (!attrs) {
        if (records.size > MAX_EXTENSION_RECORDS) throw corrupt(what, 'attribute list names too many records');
        const ext = await mft.record(e.record);
        if (ext.baseRecord !== n || !(ext.flags & RecordFlag.IN_USE)) throw corrupt(what, `attribute list names record ${e.record}, which is not one of its extensions`);
        attrs = ext.attributes;
        records.set(e.record, attrs);
      }
      const found = attrs.find((a) => a.type === e.type && a.instance === e.instance && sameName(a.name, e.name));
      if (!found) throw corrupt(what, `attribute 0x${e.type.toString(16)} (instance ${e.instance}) named by its attribute list is not in record ${e.record}`);
      attributes.push(found);
    }
  }
  const siAttr = attributes.find((a) => a.type === AttrType.STANDARD_INFORMATION);
  if (!siAttr?.value) throw corrupt(what, 'no resident $STANDARD_INFORMATION');
  return {
    number: n,
    linkCount: base.linkCount,
    isDirectory: (base.flags & RecordFlag.DIRECTORY) !== 0,
    si: parseStandardInformation(siAttr.value, what),
    attributes,
  };
}

/** The attribute `type` named `name` (all its extents merged), or undefined. */
export function findAttr(inode: Inode, type: number, name: Buffer = Buffer.alloc(0)): AttrData | undefined {
  const extents = inode.attributes.filter((a) => a.type === type && sameName(a.name, name));
  if (extents.length === 0) return undefined;
  return mergeExtents(extents, `attribute 0x${type.toString(16)} of MFT record ${inode.number}`);
}

/** Every named $DATA stream, in attribute order. */
export function namedStreams(inode: Inode): AttrData[] {
  const seen: Buffer[] = [];
  const out: AttrData[] = [];
  for (const a of inode.attributes) {
    if (a.type !== AttrType.DATA || a.name.length === 0 || seen.some((s) => sameName(s, a.name))) continue;
    seen.push(a.name);
    out.push(findAttr(inode, AttrType.DATA, a.name)!);
  }
  return out;
}

/** The first $FILE_NAME (ntfs-3g's idea of the parent directory). */
export function firstFileName(inode: Inode): FileName | undefined {
  const a = inode.attributes.find((x) => x.type === AttrType.FILE_NAME && x.value);
  return a?.value ? parseFileName(a.value, 0, a.value.length, `$FILE_NAME of MFT record ${inode.number}`) : undefined;
}
