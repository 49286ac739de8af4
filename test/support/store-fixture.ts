import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Catalog, type Layer } from '@strata/layers';
import { writeStack, type LayerSpec, type Spelling } from '@strata/harness';

export interface StoreFixture {
  store: string;
  /** Layer ids, bottom first, as registered in the catalog. */
  layers: Layer[];
  /** Real layer directories, top first (for building a reference Projection). */
  rootsTopFirst: string[];
  cleanup(): void;
}

/**
 * An image store holding one stack under layers/0..n-1, registered in the
 * catalog as base + snapshots named `${prefix}0`, `${prefix}1`, ...
 */
export async function makeStore(specs: LayerSpec[], spelling: Spelling = 'trusted', prefix = 'l'): Promise<StoreFixture> {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-store-'));
  const layersDir = path.join(store, 'layers');
  fs.mkdirSync(layersDir);
  const topFirst = writeStack(layersDir, specs, spelling);
  const catalog = new Catalog(store);
  await catalog.init();
  const layers: Layer[] = [];
  for (let i = 0; i < specs.length; i++) {
    layers.push(
      await catalog.create({
        source: `dir:layers/${i}`,
        layerType: i === 0 ? 'base' : 'snapshot',
        base: i === 0 ? undefined : { id: layers[i - 1].layerId },
        name: `${prefix}${i}`,
      }),
    );
  }
  return {
    store,
    layers,
    rootsTopFirst: topFirst.map((n) => path.join(layersDir, n)),
    cleanup: () => fs.rmSync(store, { recursive: true, force: true }),
  };
}
