export { FuseSession, MAX_FILE_RUNS, MAX_RUN_FILES } from './session';
export type {
  AdoptOptions,
  Answer,
  Attr,
  AttrAnswer,
  Caller,
  DataServing,
  DirEntry,
  EndReason,
  Entry,
  FileRun,
  FuseHandlers,
  HandoverOptions,
  LinkAnswer,
  Lifetimes,
  Listing,
  MountOptions,
  NegativeErrno,
  SessionHandover,
  SessionStats,
  OpenModesStats,
  StatFs,
} from './types';
export { encodeAttr, encodeListing, checkName } from './wire';
export { parseHandover, HANDOVER_FORMAT, HANDOVER_VERSION } from './handover';
export { parseMountinfo, topMountAt } from './mountinfo';
export type { MountEntry } from './mountinfo';
export { peerCredentials, socketFd, socketPeer } from './peer-cred';
export type { PeerCredentials } from './peer-cred';
export { sdNotify, sdRemoveFds, sdStoreFds } from './sd-notify';
export { listenFds } from './systemd-fds';
export type { ListenFd, ListenFdsOptions } from './systemd-fds';
export { HolderClient, holderBinary } from './holder-client';
export type { HolderConnectOptions, HolderEntry, HolderMeta, HolderStatus } from './holder-client';
export { bindDatagram, closeFd, connectSeqpacket, receivePacket, sendPacket, setCloexec } from './fd-passing';
export type { ReceivedPacket } from './fd-passing';
