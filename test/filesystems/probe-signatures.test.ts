/**
 * @strata/probe's hand-built signature images (formats this machine has no
 * mkfs for: HFS, HFS+, ISO 9660, LUKS1/2, md RAID 0.90/1.x, SquashFS, old
 * swap, exFAT, F2FS, EROFS, ReFS) fed to `blkid -p`: where blkid recognises
 * the bytes, TYPE, LABEL, UUID, UUID_SUB and VERSION must be the same.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type Probe, probe } from '@strata/probe';
import * as fx from '@strata/probe/dist/fixture-signatures';

function blkidFields(file: string): Record<string, string> {
  let out = '';
  try {
    out = execFileSync('blkid', ['-p', '-o', 'udev', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    if ((err as { status?: number }).status !== 2) throw err;
  }
  const udev: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) udev[line.slice(0, eq)] = line.slice(eq + 1);
  }
  // The _ENC forms keep the value exactly (hex escapes for unsafe bytes; none here).
  const decode = (s: string | undefined): string | undefined => s?.replace(/\\x([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  const fields: Record<string, string | undefined> = {
    TYPE: udev.ID_FS_TYPE,
    LABEL: decode(udev.ID_FS_LABEL_ENC),
    UUID: decode(udev.ID_FS_UUID_ENC),
    UUID_SUB: decode(udev.ID_FS_UUID_SUB_ENC),
    VERSION: udev.ID_FS_VERSION,
    PTTYPE: udev.ID_PART_TABLE_TYPE,
  };
  return Object.fromEntries(Object.entries(fields).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
}

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

const IMAGES: [string, () => Buffer][] = [
  ['HFS+', () => fx.hfsPlusImage()],
  ['HFS with a volume name', () => fx.hfsImage('Classic')],
  ['ISO 9660 with a volume id', () => fx.isoImage('UBUNTU_24')],
  ['LUKS1', () => fx.luksImage(1)],
  ['LUKS2 with a label', () => fx.luksImage(2, { label: 'cryptroot' })],
  ['LUKS2 secondary header only', () => fx.luksImage(2, { secondaryOnly: true })],
  ['md 1.2', () => fx.mdV1Image(4 * fx.MIB, 4096, 'host:0')],
  ['md 1.1', () => fx.mdV1Image(4 * fx.MIB, 0, 'x')],
  ['md 1.0', () => fx.mdV1Image(4 * fx.MIB, 4 * fx.MIB - 8192, 'y')],
  ['md 0.90', () => fx.mdV090Image(4 * fx.MIB)],
  ['SquashFS 4.0', () => fx.squashfsImage()],
  ['swap v0', () => fx.swapV0Image()],
  ['exFAT with a label', () => fx.exfatImage('Camera')],
  ['F2FS with a label', () => fx.f2fsImage('Phone')],
  ['EROFS', () => fx.magicImage(1024, '\xe2\xe1\xf5\xe0')],
  ['ReFS', () => fx.magicImage(0, '\0\0\0ReFS\0')],
  ['an MBR', () => fx.partitionTableImage('dos')],
  ['a protective MBR and a GPT header', () => fx.partitionTableImage('gpt')],
  ['a protective MBR whose GPT header fails its CRC', () => fx.partitionTableImage('pmbr')],
];

function hasBlkid(): boolean {
  try {
    execFileSync('blkid', ['-V'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

describe('hand-built signatures against blkid -p', { skip: hasBlkid() ? false : 'needs blkid' }, () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'strata-probe-sig-'));
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  for (const [name, make] of IMAGES) {
    test(name, async () => {
      const bytes = make();
      const file = path.join(dir, 'sig.img');
      fs.writeFileSync(file, bytes);
      const theirs = blkidFields(file);
      assert.ok(theirs.TYPE ?? theirs.PTTYPE, `blkid recognises the image: ${JSON.stringify(theirs)}`);
      assert.deepEqual(asBlkid(await probe(fx.memorySource(bytes))), theirs);
    });
  }
});
