import type { FixtureEntry, LayerSpec } from '@strata/harness';

/**
 * A wide three-layer stack (bottom first): `dirs` directories of `files`
 * files each in the base, a snapshot that rewrites, whites out and adds, and
 * a top that makes every tenth directory opaque. Big enough that a `find`
 * over a cold mount takes many round trips.
 */
export function wideStack(dirs: number, files: number): LayerSpec[] {
  const base: FixtureEntry[] = [];
  const snap: FixtureEntry[] = [];
  const top: FixtureEntry[] = [];
  for (let d = 0; d < dirs; d++) {
    const dir = `/tree/d${String(d).padStart(4, '0')}`;
    for (let f = 0; f < files; f++) base.push({ type: 'file', path: `${dir}/f${f}`, content: `base ${d}/${f}\n` });
    if (d % 3 === 0) snap.push({ type: 'whiteout', path: `${dir}/f0` });
    if (d % 3 === 1) snap.push({ type: 'file', path: `${dir}/f1`, content: `snapshot rewrote ${d}/1\n` });
    snap.push({ type: 'file', path: `${dir}/added`, content: `added ${d}\n` });
    if (d % 10 === 0) top.push({ type: 'dir', path: dir, opaque: true }, { type: 'file', path: `${dir}/only`, content: 'opaque\n' });
  }
  return [{ entries: base }, { entries: snap }, { entries: top }];
}
