/**
 * Test support: NTFS images made by mkntfs and filled through ntfs-3g
 * (FUSE, read-write), then mounted by ntfs-3g read-only for the reference
 * answers. ntfs-3g runs in the foreground as a child of the test so that
 * unmounting can wait for it to flush and exit; every wait is bounded and
 * every mount is undone in a finally (umount, then umount -l).
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TOOL_TIMEOUT_MS = 120_000;

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: TOOL_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
}

export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** Why tests that need ntfs-3g cannot run here, or undefined. */
export function ntfs3gSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (FUSE mounts)';
  if (!fs.existsSync('/dev/fuse')) return 'needs /dev/fuse';
  for (const t of ['mkntfs', 'ntfs-3g', 'setfattr']) if (!hasTool(t)) return `needs ${t}`;
  return undefined;
}

export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A sparse image file formatted by mkntfs (quick format), with extra mkntfs arguments. */
export function makeImage(dir: string, name: string, sizeMiB: number, mkntfsArgs: string[] = []): string {
  const image = path.join(dir, name);
  fs.writeFileSync(image, '');
  fs.truncateSync(image, sizeMiB * 1024 * 1024);
  run('mkntfs', ['-F', '-Q', '-q', ...mkntfsArgs, image]);
  return image;
}

function mounted(mnt: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Mounts `image` with ntfs-3g (options as given, e.g. 'ro' or
 * 'rw,compression'), runs fn on the mount point, then always unmounts and
 * waits for ntfs-3g to exit (so a read-write session has reached the image).
 */
export async function withNtfs3g<T>(image: string, options: string, fn: (mnt: string) => Promise<T> | T): Promise<T> {
  const mnt = makeTempDir('ntfs-mnt-');
  const child = spawn('ntfs-3g', ['-o', `${options},no_detach`, image, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));
  try {
    for (let i = 0; !mounted(mnt); i++) {
      if (exitCode !== undefined || i > 1500) throw new Error(`ntfs-3g did not mount ${image} (${options}): ${stderr}`);
      await sleep(20);
    }
    return await fn(mnt);
  } finally {
    if (mounted(mnt)) {
      try {
        run('umount', [mnt]);
      } catch {
        await sleep(500);
        try {
          run('umount', [mnt]);
        } catch {
          run('umount', ['-l', mnt]);
        }
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 30_000)))]);
    clearTimeout(timer);
    if (done === 'timeout') child.kill('SIGKILL');
    fs.rmSync(mnt, { recursive: true, force: true });
  }
}

/** Deterministic bytes (the same seed gives the same content). */
export function patternBytes(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** Windows reparse data as system.ntfs_reparse_data takes it. */
export const reparseData = {
  symlink(target: string, relative: boolean): Buffer {
    const t = Buffer.from(target, 'utf16le');
    const head = Buffer.alloc(12);
    head.writeUInt16LE(0, 0);
    head.writeUInt16LE(t.length, 2);
    head.writeUInt16LE(t.length, 4);
    head.writeUInt16LE(t.length, 6);
    head.writeUInt32LE(relative ? 1 : 0, 8);
    return withHeader(0xa000000c, Buffer.concat([head, t, t]));
  },
  junction(target: string): Buffer {
    const t = Buffer.from(target, 'utf16le');
    const head = Buffer.alloc(8);
    head.writeUInt16LE(0, 0);
    head.writeUInt16LE(t.length, 2);
    head.writeUInt16LE(t.length + 2, 4);
    head.writeUInt16LE(0, 6);
    return withHeader(0xa0000003, Buffer.concat([head, t, Buffer.alloc(4)]));
  },
  wslSymlink(target: string): Buffer {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(2, 0);
    return withHeader(0xa000001d, Buffer.concat([b, Buffer.from(target)]));
  },
  other(tag: number, data: Buffer): Buffer {
    if (tag & 0x80000000) return withHeader(tag, data);
    // A third-party tag carries a GUID that the data length does not count.
    const h = withHeader(tag, data);
    return Buffer.concat([h.subarray(0, 8), Buffer.alloc(16, 0x47), data]);
  },
};

function withHeader(tag: number, body: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(tag >>> 0, 0);
  h.writeUInt16LE(body.length, 4);
  return Buffer.concat([h, body]);
}

export function setXattr(file: string, name: string, value: Buffer, noFollow = false): void {
  run('setfattr', [...(noFollow ? ['-h'] : []), '-n', name, '-v', `0x${value.toString('hex')}`, file]);
}

/** Sets Windows file attribute bits (system.ntfs_attrib_be: big-endian 32-bit). */
export function setWindowsAttributes(file: string, bits: number): void {
  const v = Buffer.alloc(4);
  v.writeUInt32BE(bits >>> 0, 0);
  setXattr(file, 'system.ntfs_attrib_be', v);
}

/**
 * Edits a multi-sector record (FILE or INDX) of an image in place: the
 * update sequence protection is undone, `mutate` sees the logical bytes,
 * and the protection is redone so the fixups still pass. Records with an
 * update sequence array that does not fit are left alone.
 */
export function patchRecord(img: Buffer, at: number, size: number, mutate: (logical: Buffer) => void): void {
  const rec = img.subarray(at, at + size);
  const usaOfs = rec.readUInt16LE(4);
  const usaCount = rec.readUInt16LE(6);
  if (usaCount - 1 !== size / 512 || usaOfs + 2 * usaCount > size) return;
  const usn = rec.readUInt16LE(usaOfs);
  for (let i = 0; i < size / 512; i++) rec.writeUInt16LE(rec.readUInt16LE(usaOfs + 2 + 2 * i), (i + 1) * 512 - 2);
  mutate(rec);
  for (let i = 0; i < size / 512; i++) {
    const end = (i + 1) * 512 - 2;
    rec.writeUInt16LE(rec.readUInt16LE(end), usaOfs + 2 + 2 * i);
    rec.writeUInt16LE(usn, end);
  }
}

/** Offsets of the attribute records in a (logical) MFT record. */
export function attributeOffsets(rec: Buffer): number[] {
  const out: number[] = [];
  let at = rec.readUInt16LE(0x14);
  for (let i = 0; i < 64 && at + 8 <= rec.length; i++) {
    const type = rec.readUInt32LE(at);
    const len = rec.readUInt32LE(at + 4);
    if (type === 0xffffffff || len < 16 || at + len > rec.length) break;
    out.push(at);
    at += len;
  }
  return out;
}

/** Image offsets of the 1 KiB MFT records in use that hold the UTF-16 name `name` (in their $FILE_NAME). */
export function recordsNamed(img: Buffer, name: string): number[] {
  const needle = Buffer.from(name, 'utf16le');
  const out: number[] = [];
  for (let at = 0; at + 1024 <= img.length; at += 1024) {
    if (img.toString('latin1', at, at + 4) === 'FILE' && img[at + 0x16] & 1 && img.subarray(at, at + 1024).includes(needle)) out.push(at);
  }
  return out;
}

/** Sets bits in the first attribute of `type` of a record: its header flags (`header`) or a 32-bit field of a resident value. */
export function orAttribute(rec: Buffer, type: number, where: { header: number } | { valueAt: number; bits: number; width?: 2 | 4 }): boolean {
  const a = attributeOffsets(rec).find((x) => rec.readUInt32LE(x) === type);
  if (a === undefined) return false;
  if ('header' in where) rec.writeUInt16LE(rec.readUInt16LE(a + 12) | where.header, a + 12);
  else {
    const v = a + rec.readUInt16LE(a + 20) + where.valueAt;
    if (where.width === 2) rec.writeUInt16LE(rec.readUInt16LE(v) | where.bits, v);
    else rec.writeUInt32LE((rec.readUInt32LE(v) | where.bits) >>> 0, v);
  }
  return true;
}
