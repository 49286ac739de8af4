import type { GetVersionRequest, GetVersionResponse, MetadataCacheState, VersionServiceServer } from '@strata/protocol';
import { buildInfo } from '@strata/telemetry';
import { unary, type RpcContext } from './calls';

/** VersionService: which build this resolver runs (`strata version` asks every resolver it reaches). */
export function versionService(rpc: RpcContext, cache?: () => MetadataCacheState): VersionServiceServer {
  return {
    getVersion: unary('GetVersion', rpc, (_req: GetVersionRequest): Promise<GetVersionResponse> => {
      const info = buildInfo();
      return Promise.resolve({ version: info.version, commit: info.commit ?? '', node: info.node, metadataCache: cache?.() });
    }),
  };
}
