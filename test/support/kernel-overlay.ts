import * as fs from 'node:fs';

/**
 * Names a kernel overlay directory lists that can also be looked up: in a
 * directory only one layer supplies, the kernel lists stray whiteouts that
 * then fail lstat. They are not files, and strata does not list them.
 */
export function kernelListing(dir: Buffer): Buffer[] {
  return fs.readdirSync(dir, { encoding: 'buffer' }).filter((n) => {
    try {
      fs.lstatSync(Buffer.concat([dir, Buffer.from('/'), n]));
      return true;
    } catch {
      return false;
    }
  });
}
