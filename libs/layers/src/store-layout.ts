import * as path from 'node:path';

/** The catalog lives inside the image store so that every resolver sharing the store shares it. */
export const CATALOG_DIR_NAME = '.strata';

export function catalogDir(storeRoot: string): string {
  return path.join(storeRoot, CATALOG_DIR_NAME, 'catalog');
}
