/**
 * @strata/lvm against lvm2 and the kernel. lvm2's tools write real metadata
 * onto loop devices over the partitions of a GPT disk image, without
 * device-mapper (activation disabled, LVs never activated); their reports
 * (pvs, vgs, lvs --segments, vgcfgbackup) are the truth for labels, VGs and
 * segments, and for where each LV's extents lie. The kernel is the truth
 * for an LV's bytes: a linear LV is a plain range of its PV, so a loop
 * device over that range (at the offsets lvm2 reports) is the LV as the
 * kernel reads it; an ext4 made and filled through it must read the same
 * through our LV source. Spanning and striped LVs get a pattern written at
 * the PV offsets lvm2 reports, each sector naming the LV sector dm-linear or
 * dm-stripe maps there, and must read back in LV order.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type ByteSource, type DiskImage, openImage, readPartitionTable, sliceSource } from '@strata/disk-image';
import { StrataError, isStrataError } from '@strata/errors';
import { describeProbe, probe } from '@strata/probe';
import { Ext4 } from '@strata/ext4';
import { type PhysicalVolume, type PvWithSource, assembleVolumeGroups, openLogicalVolume, parseMetadataText, readPhysicalVolume, readVgMetadata } from '@strata/lvm';

const MIB = 1024 * 1024;

function run(cmd: string, args: readonly string[], options: { input?: Buffer | string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input: options.input, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
}

function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (loop devices)';
  if (!fs.existsSync('/dev/loop-control')) return 'needs loop devices';
  for (const t of ['pvcreate', 'vgcreate', 'lvcreate', 'lvs', 'sfdisk', 'losetup', 'mkfs.ext4', 'dd']) if (!hasTool(t)) return `needs ${t}`;
  return false;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface LvsSegment {
  lv_name: string;
  vg_name: string;
  lv_size: string;
  segtype: string;
  seg_start_pe: string;
  seg_size_pe: string;
  stripes: string;
  stripe_size: string;
  seg_pe_ranges: string;
}
interface PvsRow {
  pv_name: string;
  pv_uuid: string;
  vg_name: string;
  pe_start: string;
  pv_mda_count: string;
}
interface VgsRow {
  vg_name: string;
  vg_uuid: string;
  vg_extent_size: string;
  vg_seqno: string;
}

describe('LVM2 volumes against lvm2 and the kernel', { skip: skipReason() }, () => {
  const tag = `s${process.pid}`;
  const VG = `${tag}vg`;
  const VG2 = `${tag}vg2`;
  let dir: string;
  let disk: string;
  const loops: string[] = [];
  /** Partition number → { start, size } in bytes on the disk image. */
  const parts = new Map<number, { start: number; size: number; loop: string }>();
  let image: DiskImage;
  let sources: Map<number, ByteSource>;
  let lvmEnv: NodeJS.ProcessEnv;
  let config: string;

  const lvm = (cmd: string, ...args: string[]): string => run(cmd, ['--config', config, ...args], { env: lvmEnv });
  const report = <T>(cmd: string, key: string, ...args: string[]): T[] => {
    const out = JSON.parse(lvm(cmd, '--reportformat', 'json', '--units', 'b', '--nosuffix', ...args)) as { report: Record<string, T[]>[] };
    return out.report.flatMap((r) => r[key] ?? []);
  };
  const partOfLoop = (dev: string): number => {
    for (const [n, p] of parts) if (p.loop === dev) return n;
    throw new Error(`no partition on ${dev}`);
  };

  async function pvs(numbers: number[]): Promise<PvWithSource[]> {
    const out: PvWithSource[] = [];
    for (const n of numbers) {
      const source = sources.get(n);
      assert.ok(source);
      const pv = await readPhysicalVolume(source);
      assert.ok(pv, `partition ${n} holds a PV`);
      out.push({ source, pv });
    }
    return out;
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(tmpdir(), 'strata-lvm-'));
    disk = path.join(dir, 'disk.img');
    fs.writeFileSync(disk, Buffer.alloc(0));
    fs.truncateSync(disk, 112 * MIB);
    const lvmType = 'E6D6D379-F507-44C2-A23C-238F2A3DF928';
    run('sfdisk', ['-q', disk], { input: `label: gpt\nsize=32MiB, type=${lvmType}\nsize=32MiB, type=${lvmType}\nsize=40MiB, type=${lvmType}\n` });
    const table = JSON.parse(run('sfdisk', ['--json', disk])) as { partitiontable: { partitions: { node: string; start: number; size: number }[] } };
    for (const p of table.partitiontable.partitions) {
      const n = Number(/(\d+)$/.exec(p.node)?.[1]);
      const loop = run('losetup', ['-o', String(p.start * 512), '--sizelimit', String(p.size * 512), '-f', '--show', disk]).trim();
      loops.push(loop);
      parts.set(n, { start: p.start * 512, size: p.size * 512, loop });
    }
    const filter = [...parts.values()].map((p) => `"a|^${p.loop}$|"`).join(',');
    // No device-mapper here: activation off; only our loop devices scanned; no backups in /etc/lvm.
    config = `global{activation=0} devices{filter=[${filter},"r|.*|"] use_devicesfile=0 obtain_device_list_from_udev=0 scan_lvs=0} backup{backup=0 archive=0}`;
    lvmEnv = { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' };
    const [p1, p2, p3] = [1, 2, 3].map((n) => parts.get(n)?.loop ?? '');
    lvm('pvcreate', '-ff', '-y', '--metadatacopies', '2', p1);
    lvm('pvcreate', '-ff', '-y', p2);
    lvm('pvcreate', '-ff', '-y', '--metadatacopies', '2', p3);
    lvm('vgcreate', '-s', '1m', VG, p1, p2);
    lvm('lvcreate', '-an', '--zero', 'n', '-L', '8m', '-n', 'lin', VG, p1);
    lvm('lvcreate', '-an', '--zero', 'n', '-L', '6m', '-n', 'span', VG, p1);
    lvm('lvextend', '-L', '+5m', `${VG}/span`, p2);
    lvm('lvcreate', '-an', '--zero', 'n', '-L', '8m', '-i', '2', '-I', '64k', '-n', 'str', VG, p1, p2);
    lvm('vgcreate', '-s', '1m', VG2, p3);
    lvm('lvcreate', '-an', '--zero', 'n', '-L', '8m', '-n', 'solo', VG2);
    lvm('vgcfgbackup', '-f', path.join(dir, 'vg.txt'), VG);
    image = await openImage('disk.img', { storeRoot: dir });
    const t = await readPartitionTable(image);
    sources = new Map(t.partitions.map((p) => [p.number, sliceSource(image, p.start, p.size)]));
  });

  after(async () => {
    await image?.close();
    for (const l of loops) {
      try {
        run('losetup', ['-d', l]);
      } catch {
        // already detached
      }
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('PV labels: uuid, metadata areas, VG and pe_start as pvs reports them', async () => {
    const rows = report<PvsRow>('pvs', 'pv', '-o', 'pv_name,pv_uuid,vg_name,pe_start,pv_mda_count');
    assert.equal(rows.length, 3);
    for (const row of rows) {
      const n = partOfLoop(row.pv_name);
      const source = sources.get(n);
      assert.ok(source);
      const pv = (await readPhysicalVolume(source)) as PhysicalVolume;
      assert.equal(pv.uuid, row.pv_uuid);
      assert.equal(pv.metadataAreas.length, Number(row.pv_mda_count));
      assert.equal(pv.metadata?.vgName, row.vg_name);
      assert.deepEqual(pv.warnings, []);
      const entry = pv.metadata?.vg.physicalVolumes.find((p) => p.uuid === row.pv_uuid);
      assert.equal((entry?.peStart ?? -1) * 512, Number(row.pe_start));
    }
    assert.equal(await readPhysicalVolume(sliceSource(image, 0, MIB)), undefined, 'the GPT header area is no PV');
  });

  test('VGs and LVs: names, uuids, extent size, seqno, sizes and segments as vgs and lvs report them', async () => {
    const vgs = assembleVolumeGroups(await pvs([1, 2, 3]));
    const vgRows = report<VgsRow>('vgs', 'vg', '-o', 'vg_name,vg_uuid,vg_extent_size,vg_seqno');
    assert.deepEqual(
      vgs.map((v) => [v.name, v.uuid, v.extentSize, v.seqno]),
      vgRows.map((r) => [r.vg_name, r.vg_uuid, Number(r.vg_extent_size), Number(r.vg_seqno)]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    const segs = report<LvsSegment>('lvs', 'seg', '--segments', '-o', 'vg_name,lv_name,lv_size,segtype,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges');
    for (const vg of vgs) {
      assert.deepEqual(vg.warnings, []);
      const rows = segs.filter((s) => s.vg_name === vg.name);
      assert.deepEqual(vg.logicalVolumes.map((l) => l.name).sort(), [...new Set(rows.map((r) => r.lv_name))].sort());
      for (const lv of vg.logicalVolumes) {
        const mine = rows.filter((r) => r.lv_name === lv.name);
        assert.equal(lv.size, Number(mine[0].lv_size), `${lv.name} size`);
        assert.deepEqual(lv.segmentTypes, [...new Set(mine.map((r) => r.segtype))], `${lv.name} types`);
        assert.equal(lv.readable, true, lv.reason);
        const meta = vg.metadata.logicalVolumes.find((l) => l.name === lv.name);
        assert.ok(meta);
        // Segment by segment: start, length, stripes, stripe size and the PV ranges lvm2 prints.
        assert.deepEqual(
          meta.segments.map((s) => ({
            start: s.startExtent,
            count: s.extentCount,
            stripes: s.stripeCount,
            stripeSize: s.stripeSize * 512,
            ranges: s.areas
              .map((a) => {
                const pv = vg.physicalVolumes.find((p) => p.key === a.name);
                const loop = parts.get([...sources].find(([, src]) => src === pv?.source)?.[0] ?? -1)?.loop;
                return `${loop}:${a.startExtent}-${a.startExtent + s.extentCount / s.stripeCount - 1}`;
              })
              .join(' '),
          })),
          mine.map((r) => ({ start: Number(r.seg_start_pe), count: Number(r.seg_size_pe), stripes: Number(r.stripes), stripeSize: Number(r.stripe_size), ranges: r.seg_pe_ranges })),
          `${lv.name} segments`,
        );
      }
    }
  });

  test("vgcfgbackup's text, parsed, is the metadata on the PVs and what lvs reports", async () => {
    const text = fs.readFileSync(path.join(dir, 'vg.txt'), 'utf8');
    const backup = readVgMetadata(parseMetadataText(text));
    const [p1] = await pvs([1]);
    const onDisk = p1.pv.metadata?.vg;
    assert.ok(onDisk);
    const strip = (v: typeof backup): unknown => ({ ...v, logicalVolumes: v.logicalVolumes.map((l) => ({ ...l, segments: l.segments.map((s) => ({ ...s, section: undefined })) })) });
    assert.deepEqual(strip(backup), strip(onDisk));
    assert.equal(backup.name, VG);
    // And straight against lvs: name, size, and each segment's type, start, length and stripes.
    const segs = report<LvsSegment>('lvs', 'seg', '--segments', '-o', 'lv_name,lv_size,segtype,seg_start_pe,seg_size_pe,stripes,stripe_size', VG);
    const [vgRow] = report<VgsRow>('vgs', 'vg', '-o', 'vg_name,vg_uuid,vg_extent_size,vg_seqno', VG);
    assert.equal(backup.extentSize * 512, Number(vgRow.vg_extent_size));
    assert.equal(backup.uuid, vgRow.vg_uuid);
    const fromBackup = backup.logicalVolumes.flatMap((l) =>
      l.segments.map((s) => ({
        lv: l.name,
        size: l.segments.reduce((n, x) => n + x.extentCount, 0) * backup.extentSize * 512,
        type: s.type === 'striped' && s.stripeCount === 1 ? 'linear' : s.type,
        start: s.startExtent,
        count: s.extentCount,
        stripes: s.stripeCount,
        stripeSize: s.stripeSize * 512,
      })),
    );
    const fromLvs = segs.map((r) => ({ lv: r.lv_name, size: Number(r.lv_size), type: r.segtype, start: Number(r.seg_start_pe), count: Number(r.seg_size_pe), stripes: Number(r.stripes), stripeSize: Number(r.stripe_size) }));
    const order = (a: { lv: string; start: number }, b: { lv: string; start: number }): number => a.lv.localeCompare(b.lv) || a.start - b.start;
    assert.deepEqual(fromBackup.sort(order), fromLvs.sort(order));
  });

  test('a linear LV reads as the kernel reads the same extents: ext4 made and filled through a loop device over them', async () => {
    const [vgRow] = report<VgsRow>('vgs', 'vg', '-o', 'vg_name,vg_uuid,vg_extent_size,vg_seqno', VG);
    const extent = Number(vgRow.vg_extent_size);
    const [seg] = report<LvsSegment>('lvs', 'seg', '--segments', '-o', 'lv_name,lv_size,seg_pe_ranges', `${VG}/lin`);
    const m = /^(\/dev\/loop\d+):(\d+)-(\d+)$/.exec(seg.seg_pe_ranges);
    assert.ok(m, seg.seg_pe_ranges);
    const n = partOfLoop(m[1]);
    const pvRow = report<PvsRow>('pvs', 'pv', '-o', 'pv_name,pv_uuid,vg_name,pe_start,pv_mda_count').find((r) => r.pv_name === m[1]);
    assert.ok(pvRow);
    const offset = (parts.get(n)?.start ?? 0) + Number(pvRow.pe_start) + Number(m[2]) * extent;
    const size = Number(seg.lv_size);
    const loop = run('losetup', ['-o', String(offset), '--sizelimit', String(size), '-f', '--show', disk]).trim();
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt, { recursive: true });
    const content = Buffer.from(Array.from({ length: 3 * MIB + 123 }, (_, i) => (i * 7919) % 251));
    let kernel: Buffer;
    let blkidOfLoop: string;
    try {
      run('mkfs.ext4', ['-q', '-F', '-L', 'onlvm', loop]);
      run('mount', [loop, mnt]);
      try {
        fs.mkdirSync(path.join(mnt, 'etc'));
        fs.writeFileSync(path.join(mnt, 'etc', 'hostname'), 'lvm-guest\n');
        fs.writeFileSync(path.join(mnt, 'big.bin'), content);
      } finally {
        run('umount', [mnt]);
      }
      kernel = fs.readFileSync(loop);
      blkidOfLoop = run('blkid', ['-p', '-o', 'export', loop]);
    } finally {
      run('losetup', ['-d', loop]);
    }
    const [vg] = assembleVolumeGroups(await pvs([1, 2])).filter((v) => v.name === VG);
    const lv = openLogicalVolume(vg, 'lin');
    assert.equal(lv.size, kernel.length);
    assert.equal(sha(await lv.read(0, lv.size)), sha(kernel));
    const ext4 = await Ext4.open(lv);
    const etc = await ext4.lookup(ext4.rootIno, Buffer.from('etc'));
    assert.ok(etc);
    const host = await ext4.lookup(etc, Buffer.from('hostname'));
    assert.ok(host);
    assert.equal((await ext4.read(host, 0, 100)).toString(), 'lvm-guest\n');
    const big = await ext4.lookup(ext4.rootIno, Buffer.from('big.bin'));
    assert.ok(big);
    assert.equal(sha(await ext4.read(big, 0, content.length + 10)), sha(content));
    // What the LV holds, probed through our LV source, is what blkid says of the kernel's loop device.
    const p = await probe(lv);
    const theirs = Object.fromEntries(blkidOfLoop.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.deepEqual([p.type, p.label, p.uuid, p.version], [theirs.TYPE, theirs.LABEL, theirs.UUID, theirs.VERSION]);
    assert.equal(describeProbe(p), 'ext4 (label "onlvm")');
    // And the PVs themselves probe as LVM2 members of the VG.
    const pv1 = await probe(sources.get(1) as ByteSource);
    assert.deepEqual([pv1.type, pv1.detail], ['LVM2_member', `VG ${VG}`]);
  });

  test('spanning and striped LVs: a pattern written at the PV extents lvm2 reports reads back in LV order', async () => {
    const [vgRow] = report<VgsRow>('vgs', 'vg', '-o', 'vg_name,vg_uuid,vg_extent_size,vg_seqno', VG);
    const extentSectors = Number(vgRow.vg_extent_size) / 512;
    const peStart = new Map(report<PvsRow>('pvs', 'pv', '-o', 'pv_name,pv_uuid,vg_name,pe_start,pv_mda_count').map((r) => [r.pv_name, Number(r.pe_start)]));
    const segs = report<LvsSegment>('lvs', 'seg', '--segments', '-o', 'lv_name,lv_size,segtype,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges', VG);
    const label = (lv: string, sector: number): string => `${lv}#${sector}`.padEnd(24, '.');
    for (const lvName of ['span', 'str']) {
      for (const seg of segs.filter((s) => s.lv_name === lvName)) {
        const ranges = seg.seg_pe_ranges.split(' ').map((r) => {
          const m = /^(\/dev\/loop\d+):(\d+)-(\d+)$/.exec(r);
          assert.ok(m, r);
          return { dev: m[1], first: Number(m[2]), last: Number(m[3]) };
        });
        const stripes = Number(seg.stripes);
        const chunk = stripes > 1 ? Number(seg.stripe_size) / 512 : Number.MAX_SAFE_INTEGER;
        const segStart = Number(seg.seg_start_pe) * extentSectors;
        for (const [i, r] of ranges.entries()) {
          const sectors = (r.last - r.first + 1) * extentSectors;
          const buf = Buffer.alloc(sectors * 512);
          for (let a = 0; a < sectors; a++) {
            // Inverse of dm-stripe: sector a of stripe i holds LV chunk (a div chunk) * N + i.
            const lvSector = stripes > 1 ? segStart + (Math.floor(a / chunk) * stripes + i) * chunk + (a % chunk) : segStart + a;
            buf.write(label(lvName, lvSector), a * 512, 'latin1');
          }
          const partStart = parts.get(partOfLoop(r.dev))?.start ?? 0;
          const at = partStart + (peStart.get(r.dev) ?? 0) + r.first * extentSectors * 512;
          run('dd', [`of=${disk}`, 'bs=512', `seek=${at / 512}`, 'conv=notrunc', 'status=none'], { input: buf });
        }
      }
    }
    const [vg] = assembleVolumeGroups(await pvs([1, 2])).filter((v) => v.name === VG);
    for (const lvName of ['span', 'str']) {
      const lv = openLogicalVolume(vg, lvName);
      const all = await lv.read(0, lv.size);
      for (let s = 0; s < lv.size / 512; s++) {
        const got = all.subarray(s * 512, s * 512 + 24).toString('latin1');
        if (got !== label(lvName, s)) assert.fail(`${lvName} sector ${s} holds "${got}"`);
      }
      // Unaligned reads across segment and stripe boundaries.
      for (const [o, l] of [[64 * 1024 - 100, 300], [6 * MIB - 7, 1000], [MIB + 3, 200 * 1024]]) {
        if (o + l <= lv.size) assert.deepEqual(await lv.read(o, l), all.subarray(o, o + l));
      }
    }
  });

  test('a VG with a PV missing: its LVs on that PV are EIO naming the PV, the others still read', async () => {
    const uuid2 = report<PvsRow>('pvs', 'pv', '-o', 'pv_name,pv_uuid,vg_name,pe_start,pv_mda_count').find((r) => r.pv_name === parts.get(2)?.loop)?.pv_uuid;
    const [vg] = assembleVolumeGroups(await pvs([1]));
    assert.match(vg.warnings.join('\n'), new RegExp(`uuid ${uuid2}.* is missing`));
    assert.equal(vg.logicalVolumes.find((l) => l.name === 'lin')?.readable, true);
    for (const name of ['span', 'str']) {
      assert.throws(
        () => openLogicalVolume(vg, name),
        (e: unknown) => e instanceof StrataError && e.errnoName === 'EIO' && e.message.includes(`uuid ${uuid2}) is missing`),
      );
    }
    await openLogicalVolume(vg, 'lin').read(0, 4096);
  });

  test('two metadata copies: a stale second copy (from before an lvcreate) or a corrupt first one is a warning; the newest valid copy is used', async () => {
    const p3 = parts.get(3);
    assert.ok(p3);
    const before = (await pvs([3]))[0].pv;
    const old = Buffer.from(await image.read(p3.start, p3.size));
    lvm('lvcreate', '-an', '--zero', 'n', '-L', '2m', '-n', 'later', VG2);
    const now = Buffer.from(fs.readFileSync(disk).subarray(p3.start, p3.start + p3.size));
    const second = before.metadataAreas[1];
    assert.ok(second);
    const spliced = Buffer.from(now);
    old.copy(spliced, second.offset, second.offset, second.offset + second.size);
    const src = { size: spliced.length, read: async (o: number, l: number) => Buffer.from(spliced.subarray(o, o + l)) };
    const pv = await readPhysicalVolume(src);
    const [vgRow] = report<VgsRow>('vgs', 'vg', '-o', 'vg_name,vg_uuid,vg_extent_size,vg_seqno', VG2);
    assert.equal(pv?.metadata?.seqno, Number(vgRow.vg_seqno));
    assert.equal(pv?.metadata?.area, 0);
    assert.match(pv?.warnings.join('\n') ?? '', new RegExp(`area 2 has seqno ${Number(vgRow.vg_seqno) - 1}, area 1 has ${vgRow.vg_seqno}`));
    assert.ok(pv?.metadata?.vg.logicalVolumes.some((l) => l.name === 'later'));

    const first = before.metadataAreas[0];
    const hdr = now.subarray(first.offset, first.offset + 512);
    const textAt = first.offset + Number(hdr.readBigUInt64LE(40));
    const corrupt = Buffer.from(now);
    corrupt[textAt + 20] ^= 0x01;
    const pv2 = await readPhysicalVolume({ size: corrupt.length, read: async (o: number, l: number) => Buffer.from(corrupt.subarray(o, o + l)) });
    assert.equal(pv2?.metadata?.area, 1);
    assert.equal(pv2?.metadata?.seqno, Number(vgRow.vg_seqno));
    assert.match(pv2?.warnings.join('\n') ?? '', /metadata area 1 .*checksum .*used metadata area 2/);
  });

  test('COW snapshots and RAID written by vgcfgrestore are refused by name; the origin and plain LVs read', async () => {
    const file = path.join(dir, 'vg2.txt');
    lvm('vgcfgbackup', '-f', file, VG2);
    const id = (i: number): string => {
      const raw = `Strata${i}`.padEnd(32, 'x').slice(0, 32);
      return `${raw.slice(0, 6)}-${raw.slice(6, 10)}-${raw.slice(10, 14)}-${raw.slice(14, 18)}-${raw.slice(18, 22)}-${raw.slice(22, 26)}-${raw.slice(26)}`;
    };
    const lv = (i: number, name: string, status: string[], seg: string): string =>
      `${name} {\nid = "${id(i)}"\nstatus = [${status.map((s) => `"${s}"`).join(', ')}]\nflags = []\nsegment_count = 1\nsegment1 {\nstart_extent = 0\n${seg}\n}\n}\n`;
    const lin = (count: number, pe: number): string => `extent_count = ${count}\ntype = "striped"\nstripe_count = 1\nstripes = ["pv0", ${pe}]`;
    const added =
      lv(1, 'sn', ['READ', 'WRITE', 'VISIBLE'], lin(2, 12)) +
      lv(2, 'snapshot0', ['READ'], 'extent_count = 8\ntype = "snapshot"\nchunk_size = 8\norigin = "solo"\ncow_store = "sn"') +
      lv(3, 'r1', ['READ', 'WRITE', 'VISIBLE'], 'extent_count = 2\ntype = "raid1"\ndevice_count = 2\nregion_size = 1024\nraids = ["r1_rmeta_0", "r1_rimage_0", "r1_rmeta_1", "r1_rimage_1"]') +
      lv(4, 'r1_rmeta_0', ['READ', 'WRITE'], lin(1, 14)) +
      lv(5, 'r1_rimage_0', ['READ', 'WRITE'], lin(2, 15)) +
      lv(6, 'r1_rmeta_1', ['READ', 'WRITE'], lin(1, 17)) +
      lv(7, 'r1_rimage_1', ['READ', 'WRITE'], lin(2, 18));
    const text = fs.readFileSync(file, 'utf8');
    const end = text.lastIndexOf('\t}\n\n}');
    assert.ok(end > 0);
    fs.writeFileSync(file, text.slice(0, end) + added + text.slice(end));
    lvm('vgcfgrestore', '-f', file, VG2);
    const types = new Map(report<LvsSegment>('lvs', 'seg', '-a', '--segments', '-o', 'lv_name,segtype', VG2).map((r) => [r.lv_name.replace(/^\[|\]$/g, ''), r.segtype]));
    assert.equal(types.get('r1'), 'raid1');
    const [vg] = assembleVolumeGroups(await pvs([3]));
    const info = new Map(vg.logicalVolumes.map((l) => [l.name, l]));
    const refused = (name: string, message: RegExp): void => {
      assert.equal(info.get(name)?.readable, false, name);
      assert.throws(() => openLogicalVolume(vg, name), (e: unknown) => e instanceof StrataError && e.errnoName === 'EOPNOTSUPP' && message.test(e.message), name);
    };
    refused('sn', /copy-on-write store of snapshot snapshot0 of LV solo/);
    refused('snapshot0', /"snapshot" \(a COW snapshot\)/);
    refused('r1', /"raid1" \(RAID \(raid1\)\)/);
    refused('r1_rimage_0', /hidden LV/);
    assert.equal(info.get('solo')?.readable, true);
    assert.deepEqual(info.get('solo')?.notes, ['origin of snapshot sn']);
    assert.equal(info.get('later')?.readable, true);
  });

  test('fuzz: random damage to the real PVs only ever gives answers or StrataErrors', async () => {
    const p1 = parts.get(1);
    const p2 = parts.get(2);
    assert.ok(p1 && p2);
    const clean1 = Buffer.from(await image.read(p1.start, 2 * MIB));
    const tail1 = p1.size - 2 * MIB;
    const src2 = sources.get(2);
    assert.ok(src2);
    let seed = 7;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const headerEnd = 4096 + 512 + 8192;
    for (let i = 0; i < 60; i++) {
      const head = Buffer.from(clean1);
      for (let k = 0; k < 1 + Math.floor(rnd() * 10); k++) head[Math.floor(rnd() * headerEnd)] = Math.floor(rnd() * 256);
      const src1: ByteSource = {
        size: p1.size,
        read: async (o: number, l: number) => {
          if (o + l <= head.length) return Buffer.from(head.subarray(o, o + l));
          return image.read(p1.start + o, l);
        },
      };
      try {
        const found: PvWithSource[] = [];
        for (const source of [src1, src2]) {
          const pv = await readPhysicalVolume(source);
          if (pv) found.push({ source, pv });
        }
        for (const vg of assembleVolumeGroups(found)) {
          for (const l of vg.logicalVolumes) {
            try {
              const s = openLogicalVolume(vg, l.name);
              await s.read(Math.max(0, s.size - 8192), Math.min(8192, s.size));
            } catch (err) {
              assert.ok(isStrataError(err), String(err));
            }
          }
        }
      } catch (err) {
        assert.ok(isStrataError(err), String(err));
      }
    }
    assert.ok(tail1 > 0);
  });
});
