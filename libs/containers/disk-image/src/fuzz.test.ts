import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { StrataError } from '@strata/errors';
import { bufferSource, openImage, readPartitionTable } from './index';
import { prng, qemuImg, qemuIo, run, tempDir } from './fixtures';

const SEED = Number(process.env.STRATA_FUZZ_SEED ?? 0x5eed);
const ITERATIONS = 300;
const TIME_BUDGET_MS = 10_000;
const ITERATION_TIMEOUT_MS = 5_000;

let store: string;
let cleanup: () => void;

before(() => {
  ({ dir: store, cleanup } = tempDir('fuzz'));
  store = realpathSync(store);
});
after(() => cleanup());

const at = (name: string): string => path.join(store, name);

interface Target {
  name: string;
  bytes: Buffer;
  /** [start, end) byte ranges worth corrupting: header, L1, L2 tables. */
  regions: [number, number][];
}

/** Where the metadata of a qcow2 file is, read from its (pristine) header. */
function qcow2Regions(bytes: Buffer): [number, number][] {
  const clusterSize = 2 ** bytes.readUInt32BE(20);
  const l1Offset = Number(bytes.readBigUInt64BE(40));
  const l1Size = bytes.readUInt32BE(36);
  const regions: [number, number][] = [[0, 512], [l1Offset, l1Offset + l1Size * 8]];
  for (let i = 0; i < l1Size; i++) {
    const l2 = Number(bytes.readBigUInt64BE(l1Offset + i * 8) & 0x00fffffffffffe00n);
    if (l2 !== 0) regions.push([l2, l2 + clusterSize]);
  }
  return regions;
}

function mutate(bytes: Buffer, regions: [number, number][], rnd: () => number): Buffer {
  const copy = Buffer.from(bytes);
  const flips = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < flips; i++) {
    const [start, end] = regions[Math.floor(rnd() * regions.length)];
    const o = start + Math.floor(rnd() * (end - start));
    copy[o] = rnd() < 0.5 ? copy[o] ^ (1 << Math.floor(rnd() * 8)) : Math.floor(rnd() * 256);
  }
  return copy;
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ITERATION_TIMEOUT_MS} ms (hang?)`)), ITERATION_TIMEOUT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Success or a StrataError; anything else (TypeError, RangeError, a hang) fails the test. */
async function expectStrataOutcome(what: string, work: () => Promise<void>): Promise<'ok' | 'refused'> {
  try {
    await withTimeout(work(), what);
    return 'ok';
  } catch (err) {
    if (err instanceof StrataError) return 'refused';
    assert.fail(`${what}: ${err instanceof Error ? err.stack : String(err)}`);
  }
}

describe('fuzz', () => {
  test(`corrupt qcow2 headers, L1 and L2 tables (seed ${SEED})`, async (t) => {
    const targets: Target[] = [];
    const add = (name: string): void => {
      const bytes = readFileSync(at(name));
      targets.push({ name, bytes, regions: qcow2Regions(bytes) });
    };
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', at('plain.qcow2'), '4M');
    qemuIo(at('plain.qcow2'), 'write -P 0x11 0 300k', 'write -P 0x22 2040k 100k', 'write -z 100k 8k', 'write -P 0x33 4000k 96k');
    add('plain.qcow2');
    const raw = Buffer.alloc(2 * 1024 * 1024);
    for (let o = 0; o < raw.length; o += 32) raw.write(`${o} fuzz line\n`, o);
    writeFileSync(at('src.raw'), raw);
    qemuImg('convert', '-q', '-c', '-O', 'qcow2', at('src.raw'), at('compressed.qcow2'));
    add('compressed.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', at('base.qcow2'), '2M');
    qemuIo(at('base.qcow2'), 'write -P 0x44 0 2M');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', '-b', 'base.qcow2', '-F', 'qcow2', at('ext.qcow2'));
    qemuIo(at('ext.qcow2'), 'write -P 0x55 2k 6k', 'write -z 100k 4k', 'write -P 0x66 1M 64k');
    add('ext.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', '-b', 'base.qcow2', '-F', 'qcow2', at('v2.qcow2'));
    qemuIo(at('v2.qcow2'), 'write -P 0x77 64k 64k');
    add('v2.qcow2');

    const rnd = prng(SEED);
    const rssBefore = process.memoryUsage().rss;
    let peakRss = rssBefore;
    const outcomes = { ok: 0, refused: 0 };
    const deadline = Date.now() + TIME_BUDGET_MS;
    let i = 0;
    for (; i < ITERATIONS && Date.now() < deadline; i++) {
      const target = targets[i % targets.length];
      const name = `mutant-${target.name}`;
      writeFileSync(at(name), mutate(target.bytes, target.regions, rnd));
      const offsets = Array.from({ length: 4 }, () => rnd());
      const outcome = await expectStrataOutcome(`iteration ${i} (${target.name}, seed ${SEED})`, async () => {
        const img = await openImage(name, { storeRoot: store, metadataCacheBytes: 256 * 1024 });
        try {
          if (img.size <= 8 * 1024 * 1024) {
            const all = await img.read(0, img.size);
            assert.equal(all.length, img.size);
          }
          await Promise.all(
            offsets.map(async (f) => {
              const offset = Math.floor(f * img.size);
              const length = Math.min(img.size - offset, 200 * 1024);
              const got = await img.read(offset, length).catch((err: unknown) => {
                if (err instanceof StrataError) return undefined;
                throw err;
              });
              if (got) assert.equal(got.length, length);
            }),
          );
          await readPartitionTable(img);
        } finally {
          await img.close();
        }
      });
      outcomes[outcome]++;
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }
    t.diagnostic(`${i} iterations: ${outcomes.ok} read fine, ${outcomes.refused} refused with a StrataError; peak RSS growth ${Math.round((peakRss - rssBefore) / 1048576)} MiB`);
    assert.ok(i >= 50, `only ${i} iterations ran`);
    assert.ok(outcomes.refused > 0 && outcomes.ok > 0, 'the fuzzer exercised both outcomes');
    assert.ok(peakRss - rssBefore < 400 * 1024 * 1024, 'memory stays bounded');
  });

  test(`corrupt GPT headers and arrays, MBR and EBR sectors (seed ${SEED})`, async () => {
    const disk = (name: string, script: string): Buffer => {
      run('truncate', ['-s', '16M', at(name)]);
      run('sfdisk', ['-q', at(name)], script);
      return readFileSync(at(name));
    };
    const gpt = disk('gpt.img', 'label: gpt\nsize=1024, type=L\nsize=1024, type=S\nsize=512, type=H\n');
    const mbr = disk(
      'mbr.img',
      'label: dos\nmbr.img1 : size=2048, type=83\nmbr.img2 : size=12288, type=5\nmbr.img5 : size=512, type=83\nmbr.img6 : size=512, type=82\nmbr.img7 : size=512, type=83\n',
    );
    const ebrs: [number, number][] = [];
    for (let lba = 0; lba < mbr.length / 512; lba++) {
      if (mbr[lba * 512 + 510] === 0x55 && mbr[lba * 512 + 511] === 0xaa) ebrs.push([lba * 512 + 446, lba * 512 + 512]);
    }
    assert.ok(ebrs.length >= 4, 'MBR and EBRs found');
    const targets = [
      { bytes: gpt, regions: [[446, 512], [512, 604], [1024, 1024 + 128 * 4], [gpt.length - 512, gpt.length - 420]] as [number, number][] },
      { bytes: mbr, regions: ebrs },
    ];
    const rnd = prng(SEED + 1);
    const deadline = Date.now() + TIME_BUDGET_MS / 2;
    for (let i = 0; i < ITERATIONS && Date.now() < deadline; i++) {
      const target = targets[i % 2];
      const bytes = mutate(target.bytes, target.regions, rnd);
      await expectStrataOutcome(`partition iteration ${i} (seed ${SEED})`, async () => {
        const table = await readPartitionTable(bufferSource(bytes));
        const numbers = new Set<number>();
        for (const p of table.partitions) {
          assert.ok(p.start >= 0 && p.size > 0 && p.start + p.size <= bytes.length, `partition ${p.number} inside the disk`);
          assert.ok(!numbers.has(p.number), `partition number ${p.number} is unique`);
          numbers.add(p.number);
        }
      });
    }
  });
});
