/**
 * Random 4 KiB reads of data the serving process already holds, three ways:
 * by read() in JavaScript from memory, by pread(2) of a registered file on
 * the reader threads (setFileData under dataServing 'pread'), and by the
 * kernel from a passthrough backing file. Each run opens the file afresh (no
 * keepCache, so the FUSE page cache starts empty). With "direct" the child
 * opens with O_DIRECT: every 4 KiB read is one READ request (no readahead).
 *
 *   node libs/fuse-kernel/dist/read-bench.js [MiB] [reads] [direct]   (root)
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { run, runNode, tempMountpoint } from './mount-harness';

const MIB = Number(process.argv[2] ?? 64);
const READS = Number(process.argv[3] ?? 20000);
const DIRECT = process.argv[4] === 'direct';

const LOOP = `const fs = require('fs'); const n = Number(process.argv[2]); const fd = fs.openSync(process.argv[1], 'r');
  const pages = Math.floor(fs.fstatSync(fd).size / 4096); const buf = Buffer.alloc(4096);
  let x = 12345; const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) % 2147483648; fs.readSync(fd, buf, 0, 4096, (x % pages) * 4096); }
  process.stdout.write(String(n / (Number(process.hrtime.bigint() - t) / 1e9)));`;

// The same with O_DIRECT, in Python: a passthrough backing file on ext4 wants
// page-aligned buffers, which an mmap gives and a Node Buffer does not.
const DIRECT_LOOP = `import mmap, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT); n = int(sys.argv[2])
pages = os.fstat(fd).st_size // 4096; buf = mmap.mmap(-1, 4096); x = 12345; t = time.perf_counter()
for i in range(n):
    x = (x * 1103515245 + 12345) % 2147483648
    os.preadv(fd, [buf], (x % pages) * 4096)
sys.stdout.write(str(n / (time.perf_counter() - t)))`;

async function main(): Promise<void> {
  const data = randomBytes(MIB << 20);
  const store = mkdtempSync(join(tmpdir(), 'fuse-kernel-bench-'));
  writeFileSync(join(store, 'blob'), data);
  const toy = new ToyFs(1n);
  toy.file(1n, 'js', data);
  const viaPread = toy.file(1n, 'pread', data);
  const viaKernel = toy.file(1n, 'pt', data);
  const mnt = tempMountpoint();
  const session = await FuseSession.mount(mnt.path, toy.handlers(), { rootAttr: toy.nodes.get(1n)?.attr, dataServing: 'pread' });
  try {
    const fd = openSync(join(store, 'blob'), 'r');
    session.setFileData(viaPread.ino, fd);
    if (session.passthroughAvailable) session.setPassthrough(viaKernel.ino, fd);
    closeSync(fd);
    console.log(`${READS} random 4 KiB reads of a ${MIB} MiB file${DIRECT ? ' (O_DIRECT)' : ''}, data held by the server`);
    for (const [label, name] of [
      ['read() in JavaScript', 'js'],
      ['pread(2) on the reader threads', 'pread'],
      [session.passthroughAvailable ? 'passthrough' : 'passthrough unavailable, read()', 'pt'],
    ]) {
      const reads = toy.called('read');
      const preads = session.stats().preadReads;
      const runs: number[] = [];
      for (let i = 0; i < 3; i++) {
        const path = join(mnt.path, name);
        const r = DIRECT
          ? await run('/usr/bin/python3', ['-c', DIRECT_LOOP, path, String(READS)], { timeoutMs: 120_000 })
          : await runNode(LOOP, [path, String(READS)], { timeoutMs: 120_000 });
        if (r.status !== 0) throw new Error(`${label}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
        runs.push(Number(r.stdout.toString()));
      }
      runs.sort((a, b) => a - b);
      const requests = `${toy.called('read') - reads} READs in JS, ${session.stats().preadReads - preads} by pread`;
      console.log(`${label.padEnd(32)} median ${runs[1].toFixed(0).padStart(8)} reads/s (best ${runs[2].toFixed(0)}; ${requests})`);
    }
  } finally {
    await session.unmount();
    mnt.remove();
    rmSync(store, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
