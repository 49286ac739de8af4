/**
 * Random 4 KiB reads of data the serving process already holds: served by
 * the kernel from a passthrough backing file, against served by read() in
 * JavaScript from memory. Each run opens the file afresh (no keepCache, so
 * the FUSE page cache starts empty on the JavaScript side).
 *
 *   node libs/fuse-kernel/dist/read-bench.js [MiB] [reads]   (root)
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FuseSession } from './session';
import { ToyFs } from './toy-fs';
import { runNode, tempMountpoint } from './mount-harness';

const MIB = Number(process.argv[2] ?? 64);
const READS = Number(process.argv[3] ?? 20000);

const LOOP = `const fs = require('fs'); const fd = fs.openSync(process.argv[1], 'r'); const n = Number(process.argv[2]);
  const pages = Math.floor(fs.fstatSync(fd).size / 4096); const buf = Buffer.alloc(4096);
  let x = 12345; const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) % 2147483648; fs.readSync(fd, buf, 0, 4096, (x % pages) * 4096); }
  process.stdout.write(String(n / (Number(process.hrtime.bigint() - t) / 1e9)));`;

async function main(): Promise<void> {
  const data = randomBytes(MIB << 20);
  const store = mkdtempSync(join(tmpdir(), 'fuse-kernel-bench-'));
  writeFileSync(join(store, 'blob'), data);
  const toy = new ToyFs(1n);
  toy.file(1n, 'js', data);
  const viaKernel = toy.file(1n, 'pt', data);
  const mnt = tempMountpoint();
  const session = await FuseSession.mount(mnt.path, toy.handlers(), { rootAttr: toy.nodes.get(1n)?.attr });
  try {
    if (session.passthroughAvailable) {
      const fd = openSync(join(store, 'blob'), 'r');
      session.setPassthrough(viaKernel.ino, fd);
      closeSync(fd);
    }
    console.log(`${READS} random 4 KiB reads of a ${MIB} MiB file, data held by the server`);
    for (const [label, name] of [
      ['read() in JavaScript', 'js'],
      [session.passthroughAvailable ? 'passthrough' : 'passthrough unavailable, read()', 'pt'],
    ]) {
      const runs: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await runNode(LOOP, [join(mnt.path, name), String(READS)], { timeoutMs: 120_000 });
        runs.push(Number(r.stdout.toString()));
      }
      runs.sort((a, b) => a - b);
      console.log(`${label.padEnd(32)} median ${runs[1].toFixed(0).padStart(8)} reads/s (best ${runs[2].toFixed(0)})`);
    }
    console.log(`READ requests that reached JavaScript: ${toy.called('read')}`);
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
