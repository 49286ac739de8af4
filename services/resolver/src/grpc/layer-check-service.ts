import { StrataError } from '@strata/errors';
import { FileState as WireFileState, type LayerCheckServiceServer, layerRefFromProto } from '@strata/protocol';
import type { FileState, LayerChecker } from '../layer-check';
import { unary, type RpcContext } from './calls';
import { wireErrorInfo } from './wire-error';

const STATES: Record<FileState, WireFileState> = {
  ok: WireFileState.FILE_STATE_OK,
  missing: WireFileState.FILE_STATE_MISSING,
  unreadable: WireFileState.FILE_STATE_UNREADABLE,
  changed: WireFileState.FILE_STATE_CHANGED,
};

/** LayerCheckService: `strata layer check`, one layer per call (the CLI walks the list). */
export function layerCheckService(checker: LayerChecker, rpc: RpcContext): LayerCheckServiceServer {
  return {
    checkLayer: unary('CheckLayer', rpc, async (req) => {
      const c = await checker.check(layerRefFromProto(req.layer), { deep: req.deep === true });
      if (!c.ok) rpc.log.warn({ event: 'layer.check_failed', layerId: c.layer.layerId, name: c.layer.name, files: c.files.filter((f) => f.state !== 'ok'), problems: c.problems }, `layer ${c.layer.layerId} fails its check`);
      return {
        layerId: c.layer.layerId,
        name: c.layer.name,
        source: c.layer.source,
        ok: c.ok,
        files: c.files.map((f) => ({ file: f.file, role: f.role, state: STATES[f.state], detail: f.detail })),
        problems: c.problems,
        damaged: c.damaged.map((d) => ({
          path: d.path,
          ino: d.ino ?? 0,
          what: d.what,
          error: wireErrorInfo(new StrataError(d.errno, d.message, { path: d.path })),
        })),
        damagedCount: c.damagedCount,
        objectsChecked: c.objectsChecked,
      };
    }),
  };
}
