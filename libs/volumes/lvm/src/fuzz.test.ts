import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStrataError } from '@strata/errors';
import { MIB, buildPv, fixtureUuid, linear, memorySource, striped, vgText } from './fixture-pv';
import { lvmCrc } from './lvm-crc';
import { openLogicalVolume } from './logical-volume';
import { readPhysicalVolume } from './physical-volume';
import { assembleVolumeGroups } from './volume-group';

const PV0 = fixtureUuid('FUZZ00');
const PV1 = fixtureUuid('FUZZ11');
const VG = fixtureUuid('FUZZVG');

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function baseText(seqno = 3): string {
  return vgText({
    name: 'vg0',
    uuid: VG,
    seqno,
    extentSize: 2048,
    pvs: [
      { uuid: PV0, peStart: 2048, peCount: 6 },
      { uuid: PV1, peStart: 2048, peCount: 6 },
    ],
    lvs: [
      { name: 'lin', segments: [linear(0, 2, 'pv0', 0)] },
      { name: 'span', segments: [linear(0, 2, 'pv0', 2), linear(2, 1, 'pv1', 0)] },
      { name: 'str', segments: [striped(0, 2, 128, [['pv0', 4], ['pv1', 1]])] },
    ],
  });
}

function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Everything a caller would do with the PVs: read, assemble, open every LV, read its ends. Only StrataErrors may come out. */
async function exercise(disks: Buffer[]): Promise<void> {
  const work = async (): Promise<void> => {
    const found = [];
    for (const d of disks) {
      const source = memorySource(d);
      try {
        const pv = await readPhysicalVolume(source);
        if (pv) found.push({ source, pv });
      } catch (err) {
        assert.ok(isStrataError(err), `readPhysicalVolume threw ${String(err)}`);
      }
    }
    let vgs;
    try {
      vgs = assembleVolumeGroups(found);
    } catch (err) {
      assert.ok(isStrataError(err), `assembleVolumeGroups threw ${String(err)}`);
      return;
    }
    for (const vg of vgs) {
      for (const lv of vg.logicalVolumes) {
        try {
          const src = openLogicalVolume(vg, lv.name);
          await src.read(0, Math.min(src.size, 4096));
          if (src.size > 0) await src.read(Math.max(0, src.size - 70000), Math.min(src.size, 70000));
        } catch (err) {
          assert.ok(isStrataError(err), `LV ${lv.name} threw ${String(err)}`);
        }
      }
    }
  };
  await within(5000, work());
}

test('random bytes in the label, PV header and metadata area headers', async () => {
  const clean = [buildPv({ uuid: PV0, size: 8 * MIB, texts: [baseText(), baseText()] }), buildPv({ uuid: PV1, size: 8 * MIB, texts: [baseText()] })];
  const rnd = prng(11);
  for (let i = 0; i < 150; i++) {
    const disks = clean.map((d) => Buffer.from(d));
    const d = disks[i % 2];
    const region = rnd() < 0.5 ? [512, 1024] : [4096, 4096 + 512];
    for (let k = 0; k < 1 + Math.floor(rnd() * 8); k++) d[region[0] + Math.floor(rnd() * (region[1] - region[0]))] = Math.floor(rnd() * 256);
    // Half the time re-seal the checksums so that the parsers behind them see the damage.
    if (rnd() < 0.5) {
      d.writeUInt32LE(lvmCrc(d.subarray(512 + 20, 1024)), 512 + 16);
      d.writeUInt32LE(lvmCrc(d.subarray(4096 + 4, 4096 + 512)), 4096);
    }
    await exercise(disks);
  }
});

test('hostile label fields with valid checksums: huge offsets and sizes, unterminated lists', async () => {
  const rnd = prng(5);
  const values = [0, 1, 511, 512, 4096, 2 ** 32 - 1, 2 ** 53, 2 ** 63, 2 ** 64 - 1];
  for (let i = 0; i < 120; i++) {
    const d = buildPv({ uuid: PV0, size: 8 * MIB, texts: [baseText()] });
    const at = 512 + 20 + 4 * Math.floor(rnd() * 123);
    const v = values[Math.floor(rnd() * values.length)];
    if (rnd() < 0.5) d.writeUInt32LE(v >= 2 ** 32 ? 2 ** 32 - 1 : v, at);
    else d.writeBigUInt64LE(BigInt(Math.min(v, 2 ** 64 - 1)) & ((1n << 64n) - 1n), Math.min(at, 1024 - 8));
    if (rnd() < 0.3) d.fill(0xff, 512 + 72, 1024); // areas that never end
    d.writeUInt32LE(lvmCrc(d.subarray(512 + 20, 1024)), 512 + 16);
    await exercise([d]);
  }
});

test('hostile metadata text with valid checksums: truncated, garbage, deep, huge numbers, extents outside, self references', async () => {
  const text = baseText();
  const variants: string[] = [];
  for (let n = 0; n < text.length; n += 97) variants.push(text.slice(0, n));
  const rnd = prng(3);
  for (let i = 0; i < 150; i++) {
    const chars = [...text];
    for (let k = 0; k < 1 + Math.floor(rnd() * 6); k++) chars[Math.floor(rnd() * chars.length)] = String.fromCharCode(32 + Math.floor(rnd() * 95));
    variants.push(chars.join(''));
  }
  variants.push('a { '.repeat(100000));
  variants.push('['.repeat(100000));
  variants.push('x = "' + '\\'.repeat(100000));
  variants.push(text.replace(/extent_count = 2/g, 'extent_count = 99999999999999999999'));
  variants.push(text.replace(/extent_count = 2/g, 'extent_count = 9007199254740993'));
  variants.push(text.replace(/extent_size = 2048/, 'extent_size = 9223372036854775807'));
  variants.push(text.replace(/extent_size = 2048/, 'extent_size = -1'));
  variants.push(text.replace(/pe_start = 2048/g, 'pe_start = 4611686018427387904'));
  variants.push(text.replace(/"pv0", 0/, '"pv0", 4000000000'));
  variants.push(text.replace(/"pv0", 0/, '"lin", 0'));
  variants.push(text.replace(/"pv0", 0/, '"pv0"'));
  variants.push(text.replace(/stripe_count = 2/, 'stripe_count = 100000'));
  variants.push(text.replace(/stripe_size = 128/, 'stripe_size = 1'));
  variants.push(text.replace(/stripe_size = 128/, 'stripe_size = 0'));
  variants.push(text.replace(/pe_count = 6/g, 'pe_count = 600000'));
  variants.push(text.replace(/type = "striped"/, 'type = ["striped"]'));
  variants.push(text.replace(/seqno = 3/, 'seqno = "3"'));
  variants.push(text.replace(/physical_volumes \{/, 'physical_volumes = 1\nold {'));
  variants.push(text.replace(/segment_count = 1/g, 'segment_count = 4'));
  variants.push(text.replace(/start_extent = 2/, 'start_extent = 0'));
  for (const v of variants) {
    const d0 = buildPv({ uuid: PV0, size: 8 * MIB, texts: [v] });
    const d1 = buildPv({ uuid: PV1, size: 8 * MIB, texts: [undefined] });
    await exercise([d0, d1]);
  }
});

test('an LV read of the largest size allowed over 4 KiB stripes completes', async () => {
  const text = vgText({
    name: 'big',
    uuid: VG,
    seqno: 1,
    extentSize: 8,
    pvs: [
      { uuid: PV0, peStart: 2048, peCount: 3840 },
      { uuid: PV1, peStart: 2048, peCount: 3840 },
    ],
    lvs: [{ name: 'str', segments: [striped(0, 7680, 8, [['pv0', 0], ['pv1', 0]])] }],
  });
  const d0 = buildPv({ uuid: PV0, size: 17 * MIB, texts: [text] });
  const d1 = buildPv({ uuid: PV1, size: 17 * MIB, texts: [text] });
  const found = [];
  for (const d of [d0, d1]) {
    const source = memorySource(d);
    const pv = await readPhysicalVolume(source);
    assert.ok(pv);
    found.push({ source, pv });
  }
  const [vg] = assembleVolumeGroups(found);
  const lv = openLogicalVolume(vg, 'str');
  assert.equal(lv.size, 30 * MIB);
  const all = await within(10000, lv.read(0, lv.size));
  assert.equal(all.length, 30 * MIB);
});
