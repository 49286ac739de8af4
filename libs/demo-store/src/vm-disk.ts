import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { StrataError, errorMessage } from '@strata/errors';

/** A tree to put into a filesystem: path → content (directories implied). */
export type Files = Record<string, string>;

const GPT_LAYOUT = 'label: gpt\nsize=1MiB, type=21686148-6449-6E6F-744E-656564454649, name="bios"\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"\n';

function tool(cmd: string, args: string[], options: { cwd?: string; input?: string } = {}): string {
  try {
    return execFileSync(cmd, args, { cwd: options.cwd, input: options.input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw StrataError.io(`${cmd} ${args.join(' ')} failed: ${stderr || errorMessage(err)} (npm run setup installs qemu-utils, fdisk and e2fsprogs)`);
  }
}

async function writeTree(root: string, files: Files): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.writeFile(p, content, { mode: rel.startsWith('usr/bin/') ? 0o755 : 0o644 });
  }
}

/** Byte offset of partition 2, as sfdisk laid it out. */
function rootPartitionOffset(disk: string): number {
  const table = JSON.parse(tool('sfdisk', ['-J', disk])) as { partitiontable: { sectorsize?: number; partitions: { start: number }[] } };
  return table.partitiontable.partitions[1].start * (table.partitiontable.sectorsize ?? 512);
}

/**
 * A small VM disk as an installer leaves it: a GPT disk (a BIOS boot
 * partition, then an ext4 root as partition 2) holding `files`. Made with
 * the standard tools and no root: mke2fs writes the filesystem straight into
 * the partition's bytes of the disk file.
 */
export async function makeVmDisk(raw: string, mib: number, files: Files): Promise<void> {
  await fs.rm(raw, { force: true });
  await fs.writeFile(raw, '');
  await fs.truncate(raw, mib * 1024 * 1024);
  tool('sfdisk', ['-q', raw], { input: GPT_LAYOUT });
  const offset = rootPartitionOffset(raw);
  const tree = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-demo-tree-'));
  try {
    await writeTree(tree, files);
    const kib = Math.floor((mib * 1024 * 1024 - offset) / 1024) - 1024;
    tool('mke2fs', ['-q', '-t', 'ext4', '-L', 'root', '-E', `offset=${offset}`, '-d', tree, raw, `${kib}k`]);
  } finally {
    await fs.rm(tree, { recursive: true, force: true });
  }
}

/** What the guest changes in its root filesystem between two snapshots. */
export interface GuestChanges {
  write: Files;
  remove: string[];
}

/**
 * Applies a guest's changes to the root filesystem of a raw disk, in place,
 * through debugfs (e2fsprogs' own writer): the rest of the filesystem keeps
 * its blocks, as in a running VM.
 */
export async function changeVmDisk(raw: string, changes: GuestChanges): Promise<void> {
  const offset = rootPartitionOffset(raw);
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-demo-change-'));
  try {
    const commands: string[] = [];
    for (const p of changes.remove) commands.push(`rm /${p}`);
    let n = 0;
    for (const [rel, content] of Object.entries(changes.write)) {
      const local = path.join(scratch, String(n++));
      await fs.writeFile(local, content, { mode: rel.startsWith('usr/bin/') ? 0o755 : 0o644 });
      // debugfs writes a new file: an existing one is removed first (rm of a missing name only prints a warning).
      commands.push(`rm /${rel}`, `write ${local} /${rel}`);
    }
    await fs.writeFile(path.join(scratch, 'commands'), `${commands.join('\n')}\n`);
    tool('debugfs', ['-w', '-f', path.join(scratch, 'commands'), `${raw}?offset=${offset}`]);
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

/**
 * The disk as a qcow2 image. With `backing`, only the clusters that differ
 * from it are stored and the new file names it as its backing file: the
 * snapshot a hypervisor keeps of a running VM's disk.
 */
export function toQcow2(raw: string, dir: string, name: string, backing?: string): void {
  tool('qemu-img', ['convert', '-O', 'qcow2', ...(backing ? ['-B', backing, '-F', 'qcow2'] : []), raw, name], { cwd: dir });
}
