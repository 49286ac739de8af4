import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';

/** Empties the kernel's page, dentry and inode caches. */
export function dropCaches(): void {
  execFileSync('sync');
  execFileSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
}

function timed(cmd: string, args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(0, 500)}`);
  return ms;
}

/** Every entry lstat'ed (find -printf asks for size, mode, owner and mtime): ms. */
export function walk(mnt: string): number {
  return timed('sh', ['-c', 'find "$1" -printf "%p %s %m %U %T@\\n" > /dev/null', 'sh', mnt]);
}

/** How many entries a walk finds (not timed): every system must see the same tree. */
export function entries(mnt: string): number {
  const r = spawnSync('sh', ['-c', 'find "$1" | wc -l', 'sh', mnt], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`find ${mnt} failed (${r.status}): ${r.stderr.slice(0, 500)}`);
  return Number(r.stdout.trim());
}

/** Every regular file read whole, except the big one (measured apart): ms. */
export function fullRead(mnt: string, bigFile?: string): number {
  const skip = bigFile ? `! -path "$1/${bigFile}"` : '';
  return timed('sh', ['-c', `find "$1" -type f ${skip} -print0 | xargs -0 cat > /dev/null`, 'sh', mnt]);
}

/** Sequential read with 1 MiB requests: MB/s. */
export function sequentialRead(file: string): number {
  const ms = timed('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M']);
  const size = Number(execFileSync('stat', ['-c', '%s', file], { encoding: 'utf8' }).trim());
  return size / 1e6 / (ms / 1000);
}

/** Random 4 KiB reads at queue depth 1: IOPS. */
export function randomReads(file: string, count = 2000): number {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'random-read.js'), file, String(count)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`random reads failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}
