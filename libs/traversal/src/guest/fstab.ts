/** One line of /etc/fstab, as mount(8) reads it. */
export interface FstabEntry {
  spec: string;
  file: string;
  vfstype: string;
  options: string[];
  /** 1-based line number, for messages. */
  line: number;
}

/** fstab's octal escapes (\040 for a space) in the first two fields. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Lines beyond this are not read: an fstab is a few dozen lines; a hostile one is not an invitation to loop. */
const MAX_LINES = 10_000;

export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && i < MAX_LINES; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/[ \t]+/);
    if (fields.length < 2) continue;
    out.push({
      spec: unescape(fields[0]),
      file: unescape(fields[1]),
      vfstype: fields[2] ?? 'auto',
      options: (fields[3] ?? 'defaults').split(','),
      line: i + 1,
    });
  }
  return out;
}

/** The value of `name=` among mount options, undefined when absent. */
export function optionValue(options: readonly string[], name: string): string | undefined {
  const prefix = `${name}=`;
  const found = options.find((o) => o.startsWith(prefix));
  return found === undefined ? undefined : found.slice(prefix.length);
}

/** How an fstab spec names a volume. */
export type VolumeSpec =
  | { by: 'uuid' | 'label' | 'partuuid' | 'partlabel'; value: string }
  | { by: 'lv'; vg: string; lv: string }
  | { by: 'partition'; number: number }
  | { by: 'disk' }
  | { by: 'other'; text: string };

/** /dev/mapper names double every '-' inside a VG or LV name and join them with one '-'. */
function splitMapperName(name: string): { vg: string; lv: string } | undefined {
  for (let i = 0; i < name.length; i++) {
    if (name[i] !== '-') continue;
    if (name[i + 1] === '-') {
      i++;
      continue;
    }
    return { vg: name.slice(0, i).replace(/--/g, '-'), lv: name.slice(i + 1).replace(/--/g, '-') };
  }
  return undefined;
}

/** Whole-disk device names of a VM's first disk and how their partitions are spelled. */
const DISK_DEVICES = /^\/dev\/(?:(?:[vsh]|xv)d[a-z]|nvme0n1|mmcblk0)(?:p?([0-9]+))?$/;

export function parseVolumeSpec(spec: string): VolumeSpec {
  const tagged = /^(UUID|LABEL|PARTUUID|PARTLABEL)=(.*)$/.exec(spec);
  if (tagged) {
    const value = tagged[2].replace(/^"(.*)"$/, '$1');
    return { by: tagged[1].toLowerCase() as 'uuid' | 'label' | 'partuuid' | 'partlabel', value };
  }
  const byLink = /^\/dev\/disk\/by-(uuid|label|partuuid|partlabel)\/(.+)$/.exec(spec);
  if (byLink) return { by: byLink[1] as 'uuid' | 'label' | 'partuuid' | 'partlabel', value: unescapeUdev(byLink[2]) };
  const mapper = /^\/dev\/mapper\/(.+)$/.exec(spec);
  if (mapper) {
    const names = splitMapperName(mapper[1]);
    return names ? { by: 'lv', ...names } : { by: 'other', text: spec };
  }
  const disk = DISK_DEVICES.exec(spec);
  if (disk) return disk[1] === undefined ? { by: 'disk' } : { by: 'partition', number: Number(disk[1]) };
  const vgLv = /^\/dev\/([^/]+)\/([^/]+)$/.exec(spec);
  if (vgLv && !['disk', 'mapper', 'md', 'block', 'char'].includes(vgLv[1])) return { by: 'lv', vg: vgLv[1], lv: vgLv[2] };
  return { by: 'other', text: spec };
}

/** udev escapes unsafe bytes in by-label links as \xNN. */
function unescapeUdev(s: string): string {
  return s.replace(/\\x([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** Filesystem types that are never on the disk: pseudo, network and memory filesystems. */
const NOT_ON_DISK = new Set([
  'proc', 'sysfs', 'devpts', 'tmpfs', 'devtmpfs', 'securityfs', 'cgroup', 'cgroup2', 'debugfs', 'tracefs', 'mqueue', 'hugetlbfs',
  'pstore', 'efivarfs', 'bpf', 'configfs', 'fusectl', 'autofs', 'binfmt_misc', 'rpc_pipefs', 'nfsd',
  'nfs', 'nfs4', 'cifs', 'smb3', 'smbfs', 'sshfs', 'fuse.sshfs', 'glusterfs', 'ceph', '9p', 'virtiofs', 'davfs', 'none', 'swap',
]);

/** What kind of fstab line it is for composing the guest's tree. */
export function entryKind(e: FstabEntry): 'mount' | 'swap' | 'bind' | 'elsewhere' {
  if (e.vfstype === 'swap' || e.file === 'none' || e.file === 'swap') return 'swap';
  if (e.options.includes('bind') || e.options.includes('rbind')) return 'bind';
  if (NOT_ON_DISK.has(e.vfstype) || /^[^/]+:/.test(e.spec) || e.spec.startsWith('//')) return 'elsewhere';
  if (!e.file.startsWith('/')) return 'elsewhere';
  return 'mount';
}
