import * as fs from 'node:fs';

/**
 * `node random-read.js FILE COUNT`: COUNT reads of 4 KiB at random aligned
 * offsets, one at a time (queue depth 1), from a separate process so a FUSE
 * server in the parent is never touched by its own thread. Prints IOPS.
 */
const [file, countText] = process.argv.slice(2);
const count = Number(countText ?? 2000);
const fd = fs.openSync(file, 'r');
const blocks = Math.floor(fs.fstatSync(fd).size / 4096);
const buf = Buffer.alloc(4096);
let seed = 42;
const started = process.hrtime.bigint();
for (let i = 0; i < count; i++) {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  fs.readSync(fd, buf, 0, 4096, (seed % blocks) * 4096);
}
const s = Number(process.hrtime.bigint() - started) / 1e9;
fs.closeSync(fd);
process.stdout.write(`${Math.round(count / s)}\n`);
