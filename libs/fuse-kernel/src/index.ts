export { FuseSession } from './session';
export type {
  Answer,
  Attr,
  AttrAnswer,
  Caller,
  DataServing,
  DirEntry,
  EndReason,
  Entry,
  FuseHandlers,
  LinkAnswer,
  Lifetimes,
  Listing,
  MountOptions,
  NegativeErrno,
  SessionStats,
  StatFs,
} from './types';
export { encodeAttr, encodeListing, checkName } from './wire';
export { parseMountinfo, topMountAt } from './mountinfo';
export type { MountEntry } from './mountinfo';
export { peerCredentials, socketFd, socketPeer } from './peer-cred';
export type { PeerCredentials } from './peer-cred';
export { sdNotify } from './sd-notify';
