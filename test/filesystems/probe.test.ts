/**
 * @strata/probe against blkid: small images made by each mkfs (and mkswap,
 * pvcreate, sfdisk), probed by us and by `blkid -p -o export` (low-level
 * superblock probing, no cache). TYPE, LABEL, UUID, UUID_SUB and VERSION
 * must be exactly what blkid prints: fstab's UUID= and LABEL= match them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type Probe, describeProbe, probe } from '@strata/probe';

function run(cmd: string, args: readonly string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
}

function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** `blkid -p -o export`: KEY=value lines, values shell-escaped with backslashes. */
function blkid(file: string): Record<string, string> {
  let out: string;
  try {
    out = run('blkid', ['-p', '-o', 'export', file]);
  } catch (err) {
    // Exit status 2: nothing found.
    if ((err as { status?: number }).status === 2) return {};
    throw err;
  }
  const fields: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1).replace(/\\(.)/g, '$1');
  }
  // export prints non-ASCII labels cat -v style; udev's ID_FS_LABEL_ENC keeps UTF-8 and hex-escapes the rest.
  if (fields.LABEL !== undefined) {
    const udev = run('blkid', ['-p', '-o', 'udev', file]);
    const enc = /^ID_FS_LABEL_ENC=(.*)$/m.exec(udev)?.[1];
    if (enc !== undefined) fields.LABEL = decodeUdev(enc);
  }
  return fields;
}

/** Undoes blkid_encode_string: \xNN is a byte, everything else is itself (UTF-8). */
function decodeUdev(s: string): string {
  const parts: Buffer[] = [];
  for (let i = 0; i < s.length; ) {
    const m = /^\\x([0-9a-fA-F]{2})/.exec(s.slice(i, i + 4));
    if (m) {
      parts.push(Buffer.from([parseInt(m[1], 16)]));
      i += 4;
    } else {
      const cp = s.codePointAt(i) ?? 0;
      const ch = String.fromCodePoint(cp);
      parts.push(Buffer.from(ch, 'utf8'));
      i += ch.length;
    }
  }
  return Buffer.concat(parts).toString('utf8');
}

function fileSource(file: string): { size: number; read(o: number, l: number): Promise<Buffer> } {
  const size = fs.statSync(file).size;
  return {
    size,
    async read(offset: number, length: number): Promise<Buffer> {
      const fd = fs.openSync(file, 'r');
      try {
        const b = Buffer.alloc(length);
        fs.readSync(fd, b, 0, length, offset);
        return b;
      } finally {
        fs.closeSync(fd);
      }
    },
  };
}

/** Our answer in blkid's export fields. */
function asBlkid(p: Probe): Record<string, string> {
  const out: Record<string, string> = {};
  if (p.kind === 'partition-table') out.PTTYPE = p.type;
  else if (p.type) out.TYPE = p.type;
  if (p.label !== undefined) out.LABEL = p.label;
  if (p.uuid !== undefined) out.UUID = p.uuid;
  if (p.uuidSub !== undefined) out.UUID_SUB = p.uuidSub;
  if (p.version !== undefined) out.VERSION = p.version;
  return out;
}

const COMPARED = ['TYPE', 'PTTYPE', 'LABEL', 'UUID', 'UUID_SUB', 'VERSION'];

function pick(fields: Record<string, string>): Record<string, string> {
  return Object.fromEntries(COMPARED.filter((k) => fields[k] !== undefined).map((k) => [k, fields[k]]));
}

interface Case {
  name: string;
  tool: string;
  size: string;
  make: (file: string) => void;
  readable: boolean;
  describes: RegExp;
}

const CASES: Case[] = [
  { name: 'ext2 with a label', tool: 'mkfs.ext2', size: '8M', make: (f) => run('mkfs.ext2', ['-q', '-F', '-L', 'two', f]), readable: true, describes: /^ext2 \(label "two"\)$/ },
  { name: 'ext3', tool: 'mkfs.ext3', size: '8M', make: (f) => run('mkfs.ext3', ['-q', '-F', f]), readable: true, describes: /^ext3$/ },
  { name: 'ext4 (metadata_csum)', tool: 'mkfs.ext4', size: '8M', make: (f) => run('mkfs.ext4', ['-q', '-F', '-L', 'root', f]), readable: true, describes: /^ext4 \(label "root"\)$/ },
  { name: 'ext4 without a journal', tool: 'mkfs.ext4', size: '8M', make: (f) => run('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', f]), readable: true, describes: /^ext4$/ },
  { name: 'ext2 with ext4 features (extents): ext4 to blkid', tool: 'mkfs.ext2', size: '8M', make: (f) => run('mkfs.ext2', ['-q', '-F', '-O', 'extents', f]), readable: true, describes: /^ext4$/ },
  { name: 'ext3 without metadata_csum, 4 KiB blocks', tool: 'mkfs.ext3', size: '16M', make: (f) => run('mkfs.ext3', ['-q', '-F', '-b', '4096', '-L', 'a b', f]), readable: true, describes: /^ext3 \(label "a b"\)$/ },
  { name: 'xfs', tool: 'mkfs.xfs', size: '320M', make: (f) => run('mkfs.xfs', ['-q', '-f', '-L', 'xlabel', f]), readable: true, describes: /^XFS \(label "xlabel"\)$/ },
  { name: 'btrfs', tool: 'mkfs.btrfs', size: '128M', make: (f) => run('mkfs.btrfs', ['-q', '-f', '-L', 'blabel', f]), readable: true, describes: /^Btrfs \(label "blabel"\)$/ },
  { name: 'FAT12 with a label', tool: 'mkfs.fat', size: '4M', make: (f) => run('mkfs.fat', ['-F', '12', '-n', 'LBL12', f]), readable: true, describes: /^FAT12 \(vfat\) \(label "LBL12"\)$/ },
  { name: 'FAT16 with a label with a space', tool: 'mkfs.fat', size: '40M', make: (f) => run('mkfs.fat', ['-F', '16', '-n', 'MY DISK', f]), readable: true, describes: /^FAT16 \(vfat\) \(label "MY DISK"\)$/ },
  { name: 'FAT32 with a label and a chosen serial', tool: 'mkfs.fat', size: '64M', make: (f) => run('mkfs.fat', ['-F', '32', '-n', 'EFI', '-i', 'ABCD1234', f]), readable: true, describes: /^FAT32 \(vfat\) \(label "EFI"\)$/ },
  { name: 'FAT32 without a label', tool: 'mkfs.fat', size: '64M', make: (f) => run('mkfs.fat', ['-F', '32', f]), readable: true, describes: /^FAT32 \(vfat\)$/ },
  { name: 'NTFS', tool: 'mkntfs', size: '16M', make: (f) => run('mkntfs', ['-q', '-F', '-f', '-L', 'Données', f]), readable: true, describes: /^NTFS \(label "Données"\)$/ },
  { name: 'swap with a label', tool: 'mkswap', size: '16M', make: (f) => run('mkswap', ['-q', '-L', 'swp', f]), readable: false, describes: /^Linux swap \(label "swp"\)$/ },
  { name: 'swap with a chosen uuid', tool: 'mkswap', size: '16M', make: (f) => run('mkswap', ['-q', '-U', '01234567-89ab-cdef-0123-456789abcdef', f]), readable: false, describes: /^Linux swap$/ },
  {
    name: 'a GPT disk',
    tool: 'sfdisk',
    size: '8M',
    make: (f) => run('sfdisk', ['-q', f], 'label: gpt\nsize=2M\nsize=2M\n'),
    readable: false,
    describes: /^a partition table \(GPT\)$/,
  },
  { name: 'an MBR disk', tool: 'sfdisk', size: '8M', make: (f) => run('sfdisk', ['-q', f], 'label: dos\nsize=2M, type=83\n'), readable: false, describes: /^a partition table \(MBR\)$/ },
];

describe('probe against blkid -p', { skip: hasTool('blkid') ? false : 'needs blkid' }, () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'strata-probe-'));
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    test(c.name, { skip: hasTool(c.tool) ? false : `needs ${c.tool}` }, async () => {
      const file = path.join(dir, `${c.name.replace(/[^a-z0-9]+/gi, '-')}.img`);
      run('truncate', ['-s', c.size, file]);
      try {
        c.make(file);
        const ours = await probe(fileSource(file));
        const theirs = pick(blkid(file));
        assert.ok(theirs.TYPE ?? theirs.PTTYPE, `blkid found something: ${JSON.stringify(theirs)}`);
        assert.deepEqual(asBlkid(ours), theirs);
        assert.equal(ours.readable, c.readable);
        assert.match(describeProbe(ours), c.describes);
      } finally {
        fs.rmSync(file, { force: true });
      }
    });
  }

  test('zeros: nothing for blkid, "empty" for us', async () => {
    const file = path.join(dir, 'zeros.img');
    run('truncate', ['-s', '4M', file]);
    assert.deepEqual(pick(blkid(file)), {});
    const ours = await probe(fileSource(file));
    assert.equal(ours.kind, 'empty');
    assert.equal(describeProbe(ours), 'nothing recognisable (all zeros)');
  });

  test('an LVM2 PV (pvcreate, vgcreate on a loop device): UUID and VERSION as blkid, the VG named', { skip: process.getuid?.() !== 0 || !hasTool('pvcreate') ? 'needs root and lvm2' : false }, async () => {
    const file = path.join(dir, 'pv.img');
    run('truncate', ['-s', '16M', file]);
    const loop = run('losetup', ['-f', '--show', file]).trim();
    const vg = `s${process.pid}probe`;
    try {
      const config = `global{activation=0} devices{filter=["a|^${loop}$|","r|.*|"] use_devicesfile=0 obtain_device_list_from_udev=0} backup{backup=0 archive=0}`;
      const env = { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' };
      execFileSync('pvcreate', ['--config', config, '-ff', '-y', loop], { env, stdio: 'ignore', timeout: 60_000 });
      execFileSync('vgcreate', ['--config', config, vg, loop], { env, stdio: 'ignore', timeout: 60_000 });
    } finally {
      run('losetup', ['-d', loop]);
    }
    const ours = await probe(fileSource(file));
    assert.deepEqual(asBlkid(ours), pick(blkid(file)));
    assert.equal(ours.kind, 'lvm2-pv');
    assert.equal(ours.detail, `VG ${vg}`);
    assert.equal(describeProbe(ours), `an LVM2 physical volume (VG ${vg})`);
  });
});
