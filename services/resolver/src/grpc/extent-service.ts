import { ExtentKind, type ExtentMapResponse, type ExtentServiceServer, type StoreFile, layerRefFromProto } from '@strata/protocol';
import type { ExtentMapAnswer, ExtentMaps } from '../extent/extent-maps';
import type { StoreFileId, StoreIdentityFile } from '../extent/store-identity';
import { unary, type RpcContext } from './calls';

function storeFile(f: StoreFileId): StoreFile {
  const sec = f.mtimeNs / 1_000_000_000n - (f.mtimeNs % 1_000_000_000n < 0n ? 1n : 0n);
  return { path: f.path, dev: Number(f.dev), ino: Number(f.ino), size: Number(f.size), mtimeSec: Number(sec), mtimeNsec: Number(f.mtimeNs - sec * 1_000_000_000n) };
}

function response(storeId: string, m: ExtentMapAnswer): ExtentMapResponse {
  return {
    storeId,
    attr: m.attr,
    files: m.files.map(storeFile),
    extents: m.runs.map((r) => ({
      offset: r.offset,
      length: r.length,
      kind: r.kind === 'data' ? ExtentKind.EXTENT_KIND_DATA : r.kind === 'zero' ? ExtentKind.EXTENT_KIND_HOLE : ExtentKind.EXTENT_KIND_UNMAPPED,
      file: r.kind === 'data' ? r.file : 0,
      fileOffset: r.kind === 'data' ? r.fileOffset : 0,
      reason: r.kind === 'unmapped' ? r.reason : '',
    })),
    offset: m.offset,
    length: m.length,
    eof: m.eof,
    siblings: [],
  };
}

/** ExtentService: where a sealed chain's file bytes lie in the store, and which store that is. */
export function extentService(maps: ExtentMaps, store: StoreIdentityFile, rpc: RpcContext): ExtentServiceServer {
  return {
    getStoreIdentity: unary('GetStoreIdentity', rpc, async () => {
      const id = await store.identity();
      return { storeId: id.storeId, marker: storeFile(id.marker) };
    }),
    // Siblings ride on the file's own call: the same rule (read on the layer), the same audit line.
    extentMap: unary('ExtentMap', rpc, async (req) => {
      const [storeId, m] = await Promise.all([store.storeId(), maps.mapWithSiblings(layerRefFromProto(req.layer), req.path, req.offset, req.length, req.siblings ?? 0, req.beyondDirectory === true)]);
      return { ...response(storeId, m.map), siblings: m.siblings.map((s) => ({ path: s.path, map: response(storeId, s.map) })) };
    }),
  };
}
