/** The layer model of docs/design.md §2, in the spelling the catalog files use. */

export const LAYER_TYPES = ['base', 'snapshot', 'incremental', 'overlay'] as const;
export type LayerType = (typeof LAYER_TYPES)[number];

export const MOUNT_OPTIONS = ['read-only', 'no-exec', 'no-suid', 'no-dev', 'live', 'audit'] as const;
export type MountOption = (typeof MOUNT_OPTIONS)[number];

/** Longest chain, the layer itself included. */
export const MAX_CHAIN_DEPTH = 128;

export interface Layer {
  layerId: number;
  /** 0 for a base image. */
  baseLayerId: number;
  /** '' when the layer has no name. */
  name: string;
  /** "dir:<path relative to the store root>". */
  source: string;
  /** Root of the layer inside the source, absolute, normalised ("/" by default). */
  filesystemPath: string;
  layerType: LayerType;
  /** Sorted, without duplicates, always containing "read-only". */
  mountOptions: MountOption[];
  generation: number;
  createTimeMs: number;
  updateTimeMs: number;
}

/** A layer is sealed unless LIVE: its content never changes, so caches keep it forever. */
export function isSealed(layer: Layer): boolean {
  return !layer.mountOptions.includes('live');
}

export function isLayerType(value: string): value is LayerType {
  return (LAYER_TYPES as readonly string[]).includes(value);
}

export function isMountOption(value: string): value is MountOption {
  return (MOUNT_OPTIONS as readonly string[]).includes(value);
}

/** Canonical option list: read-only always present, no duplicates, fixed order. */
export function normaliseMountOptions(options: readonly MountOption[]): MountOption[] {
  const set = new Set<MountOption>(options);
  set.add('read-only');
  return MOUNT_OPTIONS.filter((o) => set.has(o));
}

/** A reference to a layer as users write it: an id or a name. */
export type LayerRef = { id: number } | { name: string };

/** "42" is an id, anything else a name (names are never all digits). */
export function parseLayerRef(text: string): LayerRef {
  return /^[0-9]+$/.test(text) ? { id: Number(text) } : { name: text };
}

export function formatLayerRef(ref: LayerRef): string {
  return 'id' in ref ? `layer ${ref.id}` : `layer "${ref.name}"`;
}
