import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StrataError } from '@strata/errors';
import { MIB, buildPv, fixtureUuid, linear, memorySource, vgText } from './fixture-pv';
import { parseLabelSector } from './label';
import { lvmCrc } from './lvm-crc';
import { readPhysicalVolume } from './physical-volume';

const PV = fixtureUuid('qHZnfNfbRXc4rOem');
const VG = fixtureUuid('cMT9CwWXdOd0nr');

function text(seqno: number): string {
  return vgText({ name: 'vg0', uuid: VG, seqno, extentSize: 2048, pvs: [{ uuid: PV, peStart: 2048, peCount: 6 }], lvs: [{ name: 'lv', segments: [linear(0, 2, 'pv0', 0)] }] });
}

async function rejects(p: Promise<unknown>, errno: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof StrataError && err.errnoName === errno && message.test(err.message));
}

test('lvm2 crc: the known value of the empty input and the chaining used for wrapped text', () => {
  assert.equal(lvmCrc(Buffer.alloc(0)), 0xf597a6cf);
  const data = Buffer.from('vg0 {\nseqno = 1\n}\n');
  assert.equal(lvmCrc(data.subarray(7), lvmCrc(data.subarray(0, 7))), lvmCrc(data));
});

test('label, PV header and metadata of a PV as pvcreate lays it out', async () => {
  const disk = buildPv({ uuid: PV, size: 8 * MIB, texts: [text(4)] });
  const pv = await readPhysicalVolume(memorySource(disk));
  assert.ok(pv);
  assert.equal(pv.uuid, PV);
  assert.equal(pv.sector, 1);
  assert.equal(pv.deviceSize, 8 * MIB);
  assert.deepEqual(pv.dataAreas, [{ offset: MIB, size: 0 }]);
  assert.deepEqual(pv.metadataAreas, [{ offset: 4096, size: MIB - 4096 }]);
  assert.equal(pv.extensionVersion, 2);
  assert.equal(pv.metadata?.seqno, 4);
  assert.equal(pv.metadata?.vgName, 'vg0');
  assert.equal(pv.metadata?.vgUuid, VG);
  assert.deepEqual(pv.warnings, []);
});

test('no label: undefined (zeros, a tiny source, a label past sector 3)', async () => {
  assert.equal(await readPhysicalVolume(memorySource(Buffer.alloc(MIB))), undefined);
  assert.equal(await readPhysicalVolume(memorySource(Buffer.alloc(100))), undefined);
  const disk = buildPv({ uuid: PV, size: 2 * MIB, texts: [text(1)] });
  const moved = Buffer.alloc(disk.length);
  disk.copy(moved, 4 * 512, 512, 1024);
  assert.equal(await readPhysicalVolume(memorySource(moved)), undefined);
});

test('a label in sector 0 or 3 is found; one whose sector field lies is refused', async () => {
  for (const s of [0, 3]) {
    const pv = await readPhysicalVolume(memorySource(buildPv({ uuid: PV, size: 2 * MIB, texts: [text(1)], labelSector: s })));
    assert.equal(pv?.sector, s);
  }
  const disk = buildPv({ uuid: PV, size: 2 * MIB, texts: [text(1)] });
  assert.throws(() => parseLabelSector(disk.subarray(512, 1024), 2), /says it is in sector 1/);
});

test('label checksum mismatch: EBADMSG', async () => {
  const disk = buildPv({ uuid: PV, size: 2 * MIB, texts: [text(1)] });
  disk[512 + 40] ^= 1;
  await rejects(readPhysicalVolume(memorySource(disk)), 'EBADMSG', /label in sector 1: checksum/);
});

test('metadata that wraps round the circular buffer is reassembled', async () => {
  const t = text(9);
  const mdaSize = 64 * 1024;
  const disk = buildPv({ uuid: PV, size: 4 * MIB, texts: [t], mdaSize, textOffset: mdaSize - 300 });
  const pv = await readPhysicalVolume(memorySource(disk));
  assert.equal(pv?.metadata?.seqno, 9);
  assert.equal(pv?.metadata?.text, t.replace(/\0+$/, ''));
});

test('two metadata areas: the newest valid one wins, a stale or corrupt copy is a warning', async () => {
  const stale = await readPhysicalVolume(memorySource(buildPv({ uuid: PV, size: 8 * MIB, texts: [text(3), text(5)] })));
  assert.equal(stale?.metadata?.seqno, 5);
  assert.equal(stale?.metadata?.area, 1);
  assert.match(stale?.warnings.join('\n') ?? '', /area 1 has seqno 3, area 2 has 5: used seqno 5/);

  const same = await readPhysicalVolume(memorySource(buildPv({ uuid: PV, size: 8 * MIB, texts: [text(5), text(5)] })));
  assert.deepEqual(same?.warnings, []);

  const disk = buildPv({ uuid: PV, size: 8 * MIB, texts: [text(6), text(6)] });
  disk[4096 + 512 + 10] ^= 0x20; // a byte of the first copy's text
  const one = await readPhysicalVolume(memorySource(disk));
  assert.equal(one?.metadata?.area, 1);
  assert.match(one?.warnings.join('\n') ?? '', /metadata area 1 at offset 4096: .*metadata checksum .* used metadata area 2/);

  disk[disk.length - (MIB - 4096) + 512 + 10] ^= 0x20; // and the second's
  await rejects(readPhysicalVolume(memorySource(disk)), 'EBADMSG', /metadata area 1 .*checksum/);
});

test('a corrupt mda header falls back to the other copy; metadata that does not parse is EUCLEAN', async () => {
  const disk = buildPv({ uuid: PV, size: 8 * MIB, texts: [text(2), text(2)] });
  disk[4096 + 30] ^= 1;
  const pv = await readPhysicalVolume(memorySource(disk));
  assert.equal(pv?.metadata?.area, 1);
  assert.match(pv?.warnings[0] ?? '', /mda header checksum/);
  const broken = buildPv({ uuid: PV, size: 8 * MIB, texts: ['vg0 { id = "x" seqno = 1 '] });
  await rejects(readPhysicalVolume(memorySource(broken)), 'EUCLEAN', /metadata area 1 .*parse error/);
});

test('a PV without metadata (metadatacopies 0, or an empty area)', async () => {
  const pv = await readPhysicalVolume(memorySource(buildPv({ uuid: PV, size: 2 * MIB, texts: [undefined] })));
  assert.equal(pv?.metadata, undefined);
  assert.match(pv?.warnings.join() ?? '', /holds no metadata/);
});
