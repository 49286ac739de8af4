import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StrataError } from '@strata/errors';
import { describeVolumeGroup } from './describe';
import { type FixtureLv, MIB, buildPv, fixtureUuid, linear, memorySource, striped, vgText } from './fixture-pv';
import { openLogicalVolume } from './logical-volume';
import { readPhysicalVolume } from './physical-volume';
import { scanVolumeGroups } from './scan';
import { assembleVolumeGroups } from './volume-group';

const EXTENT = 2048; // sectors: 1 MiB
const PV0 = fixtureUuid('AAAAAA0');
const PV1 = fixtureUuid('BBBBBB1');
const VG = fixtureUuid('VGVGVG');

/** Every 512-byte sector of a PV's data area tagged "<pv> <sector>" so that any mapping is visible. */
function tagSectors(disk: Buffer, tag: string): void {
  for (let s = MIB / 512; s < disk.length / 512; s++) disk.write(`${tag} ${s}`.padEnd(16, '.'), s * 512, 'latin1');
}

async function twoPvVg(lvs: FixtureLv[], seqnos: [number, number] = [7, 7], pvFlags: string[] = []) {
  const meta = (seqno: number): string =>
    vgText({
      name: 'vg0',
      uuid: VG,
      seqno,
      extentSize: EXTENT,
      pvs: [
        { uuid: PV0, peStart: 2048, peCount: 7 },
        { uuid: PV1, peStart: 2048, peCount: 7, flags: pvFlags },
      ],
      lvs,
    });
  const d0 = buildPv({ uuid: PV0, size: 8 * MIB, texts: [meta(seqnos[0])] });
  const d1 = buildPv({ uuid: PV1, size: 8 * MIB, texts: [meta(seqnos[1])] });
  tagSectors(d0, 'A');
  tagSectors(d1, 'B');
  const s0 = memorySource(d0);
  const s1 = memorySource(d1);
  const p0 = await readPhysicalVolume(s0);
  const p1 = await readPhysicalVolume(s1);
  assert.ok(p0 && p1);
  return { pvs: [{ source: s0, pv: p0 }, { source: s1, pv: p1 }], d0, d1 };
}

/** The tag at the start of LV sector n, as read through the LV. */
async function tagAt(src: { read(o: number, l: number): Promise<Buffer> }, sector: number): Promise<string> {
  return (await src.read(sector * 512, 16)).toString('latin1').replace(/\.+$/, '');
}

test('linear LVs, one spanning both PVs: extents map to pe_start + extent * extent_size', async () => {
  const { pvs } = await twoPvVg([
    { name: 'lin', segments: [linear(0, 2, 'pv0', 1)] },
    { name: 'span', segments: [linear(0, 3, 'pv0', 3), linear(3, 2, 'pv1', 5)] },
  ]);
  const [vg] = assembleVolumeGroups(pvs);
  assert.equal(vg.name, 'vg0');
  assert.equal(vg.extentSize, MIB);
  assert.deepEqual(vg.warnings, []);
  assert.deepEqual(
    vg.logicalVolumes.map((l) => [l.name, l.size, l.segmentTypes, l.readable]),
    [
      ['lin', 2 * MIB, ['linear'], true],
      ['span', 5 * MIB, ['linear'], true],
    ],
  );
  const lin = openLogicalVolume(vg, 'lin');
  assert.equal(lin.size, 2 * MIB);
  // PV sector = pe_start (2048) + extent 1 * 2048 + n
  assert.equal(await tagAt(lin, 0), 'A 4096');
  assert.equal(await tagAt(lin, 2047), 'A 6143');
  const span = openLogicalVolume(vg, 'span');
  assert.equal(await tagAt(span, 3 * 2048 - 1), `A ${2048 + 6 * 2048 - 1}`);
  assert.equal(await tagAt(span, 3 * 2048), `B ${2048 + 5 * 2048}`);
  // One read across the segment boundary.
  const across = await span.read(3 * MIB - 512, 1024);
  assert.equal(across.subarray(0, 16).toString('latin1'), `A ${2048 + 6 * 2048 - 1}`.padEnd(16, '.'));
  assert.equal(across.subarray(512, 528).toString('latin1'), `B ${2048 + 5 * 2048}`.padEnd(16, '.'));
  await assert.rejects(span.read(5 * MIB - 10, 11), (e: unknown) => e instanceof StrataError && e.errnoName === 'EIO');
});

test('striped: chunks alternate between the stripes, rows advance in each', async () => {
  const { pvs } = await twoPvVg([{ name: 'str', segments: [striped(0, 4, 128, [['pv0', 0], ['pv1', 2]])] }]);
  const [vg] = assembleVolumeGroups(pvs);
  const str = openLogicalVolume(vg, 'str');
  assert.equal(str.size, 4 * MIB);
  const base0 = 2048;
  const base1 = 2048 + 2 * 2048;
  assert.equal(await tagAt(str, 0), `A ${base0}`);
  assert.equal(await tagAt(str, 127), `A ${base0 + 127}`);
  assert.equal(await tagAt(str, 128), `B ${base1}`);
  assert.equal(await tagAt(str, 256), `A ${base0 + 128}`);
  assert.equal(await tagAt(str, 383), `A ${base0 + 255}`);
  assert.equal(await tagAt(str, 511), `B ${base1 + 255}`);
  const big = await str.read(0, 4 * MIB);
  for (let s = 0; s < 8192; s += 97) {
    const chunk = Math.floor(s / 128);
    const expected = chunk % 2 === 0 ? `A ${base0 + (chunk >> 1) * 128 + (s % 128)}` : `B ${base1 + (chunk >> 1) * 128 + (s % 128)}`;
    assert.equal(big.subarray(s * 512, s * 512 + 16).toString('latin1').replace(/\.+$/, ''), expected, `sector ${s}`);
  }
});

test('refusals name the type; a missing PV is EIO naming its uuid; other LVs stay readable', async () => {
  const { pvs } = await twoPvVg([
    { name: 'lin', segments: [linear(0, 1, 'pv0', 0)] },
    { name: 'onb', segments: [linear(0, 1, 'pv1', 0)] },
    { name: 'pool', segments: ['start_extent = 0\nextent_count = 1\ntype = "thin-pool"\nmetadata = "pool_tmeta"\npool = "pool_tdata"'] },
    { name: 'thin1', segments: ['start_extent = 0\nextent_count = 1\ntype = "thin"\nthin_pool = "pool"\ndevice_id = 1'] },
    { name: 'r', segments: ['start_extent = 0\nextent_count = 1\ntype = "raid1"\ndevice_count = 2\nraids = ["a", "b", "c", "d"]'] },
    { name: 'vdo', segments: ['start_extent = 0\nextent_count = 1\ntype = "vdo"\nvdo_pool = "x"\nvdo_offset = 0'] },
    { name: 'cow', segments: [linear(0, 1, 'pv0', 4)] },
    { name: 'snapshot0', status: ['READ'], segments: ['start_extent = 0\nextent_count = 1\ntype = "snapshot"\nchunk_size = 8\norigin = "lin"\ncow_store = "cow"'] },
    { name: 'hidden', status: ['READ', 'WRITE'], segments: [linear(0, 1, 'pv0', 5)] },
    { name: 'moving', segments: [linear(0, 1, 'pvmove0', 0)] },
    { name: 'pvmove0', status: ['READ', 'WRITE', 'PVMOVE'], segments: [linear(0, 1, 'pv0', 6)] },
    { name: 'nowhere', segments: [linear(0, 1, 'pv9', 0)] },
    { name: 'outside', segments: [linear(0, 3, 'pv1', 5)] },
    { name: 'gap', segments: [linear(1, 1, 'pv1', 5)] },
  ]);
  const [vg] = assembleVolumeGroups(pvs);
  const info = new Map(vg.logicalVolumes.map((l) => [l.name, l]));
  assert.equal(info.get('lin')?.readable, true);
  assert.deepEqual(info.get('lin')?.notes, ['origin of snapshot cow']);
  const expect = (name: string, errno: string, message: RegExp): void => {
    assert.equal(info.get(name)?.readable, false, name);
    assert.match(info.get(name)?.reason ?? '', message);
    assert.throws(() => openLogicalVolume(vg, name), (e: unknown) => e instanceof StrataError && e.errnoName === errno && message.test(e.message), name);
  };
  expect('pool', 'EOPNOTSUPP', /segment type "thin-pool" \(a thin pool\)/);
  expect('thin1', 'EOPNOTSUPP', /segment type "thin" \(a thin volume\)/);
  expect('r', 'EOPNOTSUPP', /"raid1" \(RAID \(raid1\)\)/);
  expect('vdo', 'EOPNOTSUPP', /"vdo" \(VDO\)/);
  expect('snapshot0', 'EOPNOTSUPP', /"snapshot" \(a COW snapshot\)/);
  expect('cow', 'EOPNOTSUPP', /copy-on-write store of snapshot snapshot0 of LV lin/);
  expect('hidden', 'EOPNOTSUPP', /hidden LV/);
  expect('moving', 'EOPNOTSUPP', /lies on LV pvmove0/);
  expect('nowhere', 'EUCLEAN', /names pv9/);
  expect('outside', 'EUCLEAN', /extents 5-7 of PV pv1 are beyond its 7 extents/);
  expect('gap', 'EUCLEAN', /segment1 starts at extent 1, expected 0/);
  assert.throws(() => openLogicalVolume(vg, 'nope'), (e: unknown) => e instanceof StrataError && e.errnoName === 'ENOENT');
  assert.match(describeVolumeGroup(vg), /LV lin: 1 MiB, linear, origin of snapshot cow: readable\n.*LV onb: 1 MiB, linear: readable/);

  // Without the second PV: its LV is EIO naming the PV, the first PV's LVs still read.
  const [half] = assembleVolumeGroups([pvs[0]]);
  assert.match(half.warnings.join('\n'), new RegExp(`PV pv1 \\(uuid ${PV1}, last seen as /dev/fixture1\\) is missing`));
  assert.equal(half.logicalVolumes.find((l) => l.name === 'lin')?.readable, true);
  assert.throws(() => openLogicalVolume(half, 'onb'), (e: unknown) => e instanceof StrataError && e.errnoName === 'EIO' && e.message.includes(`PV pv1 (uuid ${PV1}) is missing`));
});

test('a PV the metadata marks MISSING is missing even when a source carries its label', async () => {
  const { pvs } = await twoPvVg([{ name: 'onb', segments: [linear(0, 1, 'pv1', 0)] }], [7, 7], ['MISSING']);
  const [vg] = assembleVolumeGroups(pvs);
  assert.throws(() => openLogicalVolume(vg, 'onb'), (e: unknown) => e instanceof StrataError && e.errnoName === 'EIO');
});

test('PVs with different seqnos: the newest metadata is used, with a warning; a PV given twice is a warning', async () => {
  const { pvs } = await twoPvVg([{ name: 'lin', segments: [linear(0, 1, 'pv0', 0)] }], [7, 9]);
  const [vg] = assembleVolumeGroups([...pvs, pvs[0]]);
  assert.equal(vg.seqno, 9);
  assert.match(vg.warnings.join('\n'), /holds VG vg0 metadata seqno 7, another PV 9: used seqno 9/);
  assert.match(vg.warnings.join('\n'), /was given twice/);
});

test('scanVolumeGroups: PVs among other sources, a broken label kept as a failure', async () => {
  const { d0, d1 } = await twoPvVg([{ name: 'lin', segments: [linear(0, 1, 'pv0', 0)] }]);
  const broken = Buffer.from(d1);
  broken[512 + 100] ^= 1;
  const result = await scanVolumeGroups([
    { name: 'p1', source: memorySource(Buffer.alloc(MIB)) },
    { name: 'p2', source: memorySource(d0) },
    { name: 'p3', source: memorySource(broken) },
  ]);
  assert.deepEqual(result.volumeGroups.map((v) => v.name), ['vg0']);
  assert.equal(result.failures.length, 1);
  assert.equal(result.failures[0].name, 'p3');
  assert.match(result.failures[0].message, /checksum/);
  assert.equal(result.volumeGroups[0].logicalVolumes[0].readable, true);
});
