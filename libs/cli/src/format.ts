import type { MountInfo } from '@strata/agent-control';
import type { Layer } from '@strata/layers';
import { fileTypeOf, isDeviceMode, type FileType } from '@strata/posix';
import type { Attr } from '@strata/protocol';

/** The JSON and text shapes the CLI prints. Scripts depend on the JSON ones: change them only by adding fields. */

/** The CLI's names and `ls` letters for each file type (the names are part of the JSON output). */
const TYPES: Record<FileType, { name: string; letter: string }> = {
  socket: { name: 'socket', letter: 's' },
  symlink: { name: 'symlink', letter: 'l' },
  file: { name: 'file', letter: '-' },
  block: { name: 'block-device', letter: 'b' },
  dir: { name: 'directory', letter: 'd' },
  char: { name: 'char-device', letter: 'c' },
  fifo: { name: 'fifo', letter: 'p' },
  unknown: { name: 'unknown', letter: '?' },
};

export function fileType(mode: number): string {
  return TYPES[fileTypeOf(mode)].name;
}

/** "-rw-r--r--", with setuid/setgid/sticky as ls shows them. */
export function modeString(mode: number): string {
  const t = TYPES[fileTypeOf(mode)].letter;
  const rwx = (bits: number, special: boolean, s: string): string =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? s : s.toUpperCase()) : bits & 1 ? 'x' : '-');
  return (
    t +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}

/** Paths are bytes: valid UTF-8 prints as is; anything else also gets the exact bytes in base64. */
export function pathJson(path: Buffer): { path: string; pathBase64?: string } {
  const text = path.toString('utf8');
  return Buffer.from(text, 'utf8').equals(path) ? { path: text } : { path: text, pathBase64: path.toString('base64') };
}

export function pathText(path: Buffer): string {
  const text = path.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(path)) return text;
  let out = '';
  for (const b of path) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

export function attrJson(a: Attr): Record<string, number | string> {
  return { type: fileType(a.mode), ...a };
}

export function layerJson(l: Layer): Record<string, unknown> {
  return {
    layerId: l.layerId,
    baseLayerId: l.baseLayerId,
    name: l.name,
    source: l.source,
    filesystemPath: l.filesystemPath,
    layerType: l.layerType,
    mountOptions: l.mountOptions,
    generation: l.generation,
    createTime: new Date(l.createTimeMs).toISOString(),
    updateTime: new Date(l.updateTimeMs).toISOString(),
  };
}

function time(sec: number, nsec: number): string {
  const d = new Date(sec * 1000);
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}.${String(nsec).padStart(9, '0')} +0000`;
}

export function statText(path: string, a: Attr, linkTarget?: string): string {
  const dev = isDeviceMode(a.mode);
  return [
    `  File: ${path}${linkTarget !== undefined ? ` -> ${linkTarget}` : ''}`,
    `  Size: ${a.size}\tBlocks: ${a.blocks}\tIO Block: ${a.blksize}\t${fileType(a.mode)}`,
    `Inode: ${a.ino}\tLinks: ${a.nlink}${dev ? `\tDevice type: ${Math.floor(a.rdev / 256)},${a.rdev % 256}` : ''}`,
    `Access: (${(a.mode & 0o7777).toString(8).padStart(4, '0')}/${modeString(a.mode)})  Uid: ${a.uid}  Gid: ${a.gid}`,
    `Access: ${time(a.atimeSec, a.atimeNsec)}`,
    `Modify: ${time(a.mtimeSec, a.mtimeNsec)}`,
    `Change: ${time(a.ctimeSec, a.ctimeNsec)}`,
  ].join('\n');
}

export function lsLine(name: string, a: Attr): string {
  const when = new Date(a.mtimeSec * 1000).toISOString().slice(0, 16).replace('T', ' ');
  return `${modeString(a.mode)} ${String(a.nlink).padStart(3)} ${String(a.uid).padStart(5)} ${String(a.gid).padStart(5)} ${String(a.size).padStart(10)} ${when} ${name}`;
}

export function layerTable(layers: readonly Layer[]): string {
  const rows = [['ID', 'BASE', 'TYPE', 'GEN', 'OPTIONS', 'NAME', 'SOURCE']];
  for (const l of layers) {
    rows.push([
      String(l.layerId),
      l.baseLayerId ? String(l.baseLayerId) : '-',
      l.layerType,
      String(l.generation),
      // The names --option takes and the JSON lists, read-only included.
      l.mountOptions.join(',') || '-',
      l.name || '-',
      l.source + (l.filesystemPath !== '/' ? ` (${l.filesystemPath})` : ''),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

/** The one JSON document a `--json` command prints. */
export function jsonDocument(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** A mount's state, with the last error when it is not serving: "degraded (EIO x5)". */
export function mountStateText(m: MountInfo): string {
  if (m.state === undefined) return '-';
  if (m.state === 'serving' || !m.health?.lastError) return m.state;
  return `${m.state} (${m.health.lastError.errno} x${m.health.consecutiveFailures})`;
}

/** `strata mounts` as a table. */
export function mountTable(mounts: MountInfo[]): string {
  const rows = [
    ['MOUNTPOINT', 'LAYER', 'NAME', 'CHAIN', 'MODE', 'STATE', 'FLAGS'],
    // STATE: how its operations end now (an agent too old to say: "-"); a mount whose reads fail never shows as serving.
    ...mounts.map((m) => [m.mountpoint, String(m.layerId), m.layerName || '-', m.chain.join('>'), m.live ? 'live' : 'sealed', mountStateText(m), m.flags.join(',')]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}
