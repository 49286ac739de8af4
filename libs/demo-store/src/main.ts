import * as path from 'node:path';
import { Catalog } from '@strata/layers';
import { Projection, diff, isDirMode, printable } from '@strata/traversal';
import { buildDemoStore } from './build-demo-store';

/**
 * `npm start` until the agent can mount: builds the embedded default store
 * and shows the merged view of the top snapshot and what changed between the
 * snapshots, straight from the traversal engine.
 */
async function main(): Promise<void> {
  const store = path.resolve(process.env.STRATA_STORE ?? '.demo/store');
  const demo = await buildDemoStore(store);
  const catalog = new Catalog(store);
  const chain = await catalog.chain({ id: demo.snapshot2.layerId });
  console.log(`store ${store}`);
  console.log(`chain: ${chain.map((l) => `${l.name} (layer ${l.layerId}, ${l.layerType})`).join(' -> ')}\n`);
  const projection = new Projection(chain.map((l) => catalog.layerRoot(l)));
  console.log(`merged view of ${demo.snapshot2.name}:`);
  for await (const batch of projection.walk('/')) {
    for (const e of batch) {
      const kind = isDirMode(e.attr.mode) ? 'd' : '-';
      console.log(`  ${kind}${(e.attr.mode & 0o777).toString(8)} ${String(e.attr.size).padStart(6)} ${printable(e.path)}`);
    }
  }
  const from = new Projection((await catalog.chain({ id: demo.snapshot1.layerId })).map((l) => catalog.layerRoot(l)));
  console.log(`\nchanges from ${demo.snapshot1.name} to ${demo.snapshot2.name}:`);
  for await (const batch of diff(from, projection, '/')) {
    for (const c of batch) console.log(`  ${c.kind.padEnd(8)} ${printable(c.path)}`);
  }
  const hostname = await projection.read('/etc/hostname', 0, 4096);
  console.log(`\n/etc/hostname in ${demo.snapshot2.name}: ${hostname.data.toString().trim()}`);
}

main().catch((err: unknown) => {
  console.error(`strata demo: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
