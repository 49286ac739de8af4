/**
 * Paths inside a layer as cache keys. Names are bytes, not text: latin1
 * maps every byte to one character, so a key is the path, losslessly.
 */

export function keyOf(path: Buffer): string {
  return path.toString('latin1');
}

export function pathOf(key: string): Buffer {
  return Buffer.from(key, 'latin1');
}

export function parentKey(key: string): string {
  const i = key.lastIndexOf('/');
  return i <= 0 ? '/' : key.slice(0, i);
}

export function baseName(key: string): Buffer {
  return Buffer.from(key.slice(key.lastIndexOf('/') + 1), 'latin1');
}

export function childKey(dir: string, name: Buffer): string {
  return (dir === '/' ? '/' : `${dir}/`) + name.toString('latin1');
}
