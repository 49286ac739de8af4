/** Test support: a small tree with one of each structure, for images of a few MiB. */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { run } from './fixture-image';
import { patternBytes } from './fixture-tree';

export async function fillSmallTree(mnt: string, blockSize: number): Promise<void> {
  const p = (...parts: string[]): string => path.join(mnt, ...parts);
  await fsp.writeFile(p('a'), 'alpha');
  await fsp.writeFile(p('b'), patternBytes(20_000, 'b'));
  await fsp.mkdir(p('d'));
  for (const n of ['one', 'two', 'three']) await fsp.writeFile(p('d', n), n);
  await fsp.mkdir(path.join(mnt, 'x1', 'x2', 'x3'), { recursive: true });
  await fsp.writeFile(p('x'), 'x');
  run('setfattr', ['-n', 'user.block', '-v', '0x' + patternBytes(400, 'xb').toString('hex'), p('x')]);
  run('setfattr', ['-n', 'user.small', '-v', 'small', p('x')]);
  await fsp.symlink('a', p('fast'));
  await fsp.symlink('s'.repeat(100), p('slow'));
  await fsp.mkdir(p('big'));
  for (let i = 0; i < 400; i++) await fsp.writeFile(p('big', `name-${i}`), '');
  // Every other block written: more extents than the inode holds, so the tree gets an extent block.
  const frag = await fsp.open(p('frag'), 'w');
  const blk = patternBytes(blockSize, 'frag');
  for (let i = 0; i < 40; i++) await frag.write(blk, 0, blockSize, i * 2 * blockSize);
  await frag.close();
}
