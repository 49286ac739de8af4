export * from './processes';
export * from './layer-fixture';
export { canMountOverlay, mountOverlay, unmountOrDetach } from './kernel-overlay';
export { S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK, lsetxattr, makedev, mknod } from './sysops';
export { readableCheckout, type ReadableCheckout } from './readable-copy';
