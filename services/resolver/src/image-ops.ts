import { StrataError } from '@strata/errors';
import { type Catalog, type Layer, type LayerRef, isImageScheme, parseSource, resolveImageFile } from '@strata/layers';
import { GuestSource, ImageSource, LiveImageSource, inspectDisk, type DiskReport, type ImageSourceOptions } from '@strata/traversal';
import type { LayerSources } from './layer-sources';

/** What GetLayer says of an image layer's content. */
export interface ImageLayerInfo {
  imageFormat: string;
  filesystemType: string;
  guestTree: boolean;
}

/** A disk image looked into: a layer's source, or a source not in the catalog. */
export type InspectTarget = { layer: LayerRef } | { source: string };

/** Looks inside disk images without mounting them: `strata inspect`, and the image facts of `layer get`. */
export class ImageOps {
  constructor(
    private readonly catalog: Catalog,
    private readonly sources: LayerSources,
  ) {}

  /** The image format and filesystem an image layer shows; undefined for a dir: layer or an image that cannot be opened now. */
  async info(layer: Layer): Promise<ImageLayerInfo | undefined> {
    if (!isImageScheme(parseSource(layer.source).scheme)) return undefined;
    const source = await this.sources.sourceOf(layer, true, false).catch(() => undefined);
    if (source instanceof GuestSource || source instanceof ImageSource || source instanceof LiveImageSource) {
      return { imageFormat: source.imageFormat, filesystemType: source.filesystemType, guestTree: source instanceof GuestSource };
    }
    return undefined;
  }

  async inspect(target: InspectTarget): Promise<DiskReport> {
    const source = 'layer' in target ? (await this.catalog.chain(target.layer))[0].source : target.source;
    const parsed = parseSource(source);
    if (!isImageScheme(parsed.scheme)) throw StrataError.invalid(`source ${source} is not a disk image: inspect reads disk images`);
    resolveImageFile(this.catalog.storeRoot, source);
    const options: ImageSourceOptions = {
      storeRoot: this.catalog.storeRoot,
      image: parsed.relative,
      format: parsed.scheme,
      ...(parsed.snapshot === undefined ? {} : { snapshot: parsed.snapshot }),
    };
    return inspectDisk(options);
  }
}
