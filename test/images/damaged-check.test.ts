import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno } from '@strata/errors';
import { ImageSource, deepCheck } from '@strata/traversal';
import { blockOf, canLoopMount, debugfsWrite, inodeOf, makeImage, patch, readBytes, tool } from './damaged-support';

/**
 * The deep check (`strata layer check --deep`) against the kernel: the same
 * damaged objects, with the same errno, as a read-only mount shows when
 * every entry is stat'ed, every directory listed, every link read and every
 * file read to its end.
 */

const skip = canLoopMount() ? false : 'needs root, loop devices, mke2fs and debugfs';
const BS = 1024;

let work: string;

before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-damaged-check-'));
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

type Finding = string;

/** The kernel's findings, spelled `what path errno`. */
function kernelFindings(image: string): Finding[] {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-damaged-check-mnt-'));
  const out: Finding[] = [];
  const errno = (err: unknown): number => Math.abs(Number((err as { errno?: unknown }).errno ?? -1));
  try {
    tool('mount', ['-t', 'ext4', '-o', 'ro,loop', image, mnt]);
    try {
      const visit = (rel: string): void => {
        let names: string[];
        try {
          names = fs.readdirSync(path.join(mnt, rel));
        } catch (err) {
          out.push(`listing ${rel || '/'} ${errno(err)}`);
          return;
        }
        for (const n of names.sort()) {
          const childRel = `${rel}/${n}`;
          if (childRel === '/lost+found') continue;
          const full = path.join(mnt, childRel);
          let st: fs.Stats;
          try {
            st = fs.lstatSync(full);
          } catch (err) {
            out.push(`entry ${childRel} ${errno(err)}`);
            continue;
          }
          if (st.isSymbolicLink()) {
            try {
              fs.readlinkSync(full);
            } catch (err) {
              out.push(`link ${childRel} ${errno(err)}`);
            }
          } else if (st.isFile()) {
            try {
              fs.readFileSync(full);
            } catch (err) {
              out.push(`content ${childRel} ${errno(err)}`);
            }
          } else if (st.isDirectory()) visit(childRel);
        }
      };
      visit('');
    } finally {
      tool('umount', [mnt]);
    }
  } finally {
    fs.rmdirSync(mnt);
  }
  return out.sort();
}

describe('layer check --deep: every damaged object, as the kernel finds it', { skip }, () => {
  test('a deleted inode, an htree index failing its checksum and an extent past the end of the filesystem', async () => {
    const img = path.join(work, 'many.img');
    makeImage(img);
    debugfsWrite(img, `clri <${inodeOf(img, '/d/two')}>`);
    const root = blockOf(img, '/big', 0);
    patch(img, root * BS + 0x28, Buffer.from([readBytes(img, root * BS + 0x28, 1)[0] ^ 0x55]));
    // /sub/deep/x: its first extent (i_block + 12-byte header) starts past the end of the filesystem.
    debugfsWrite(img, `sif /sub/deep/x block[5] ${0x7ffffff0}`);
    const kernel = kernelFindings(img);
    const source = await ImageSource.open({ storeRoot: work, image: 'many.img', format: 'raw' });
    let report;
    try {
      report = await deepCheck(source);
    } finally {
      await source.close();
    }
    const strata = report.findings.map((f) => `${f.what} ${f.path.toString()} ${f.errno}`).sort();
    assert.deepEqual(strata, kernel);
    assert.deepEqual(kernel, [`entry /d/two ${Errno.EUCLEAN}`, `entry /sub/deep/x ${Errno.EUCLEAN}`, `listing /big ${Errno.EBADMSG}`]);
    assert.equal(report.damaged, 3);
    // /, /a, /big, /d and its three, /link, /sub, /sub/deep, /sub/deep/x (lost+found and its listing too).
    assert.ok(report.objects >= 10, `${report.objects} objects`);
    assert.equal(report.aborted, false);
  });

  test('an undamaged disk has no findings, and every byte of it is read', async () => {
    const img = path.join(work, 'clean.img');
    makeImage(img);
    assert.deepEqual(kernelFindings(img), []);
    const source = await ImageSource.open({ storeRoot: work, image: 'clean.img', format: 'raw' });
    try {
      const report = await deepCheck(source);
      assert.deepEqual(report.findings, []);
      assert.equal(report.bytes, 6 + 40 + 40 + 60 + 3000);
    } finally {
      await source.close();
    }
  });
});
