// The addon fuse-native loads through node-gyp-build (same module instance).
declare module 'node-gyp-build' {
  function load(dir: string): {
    fuse_native_unmount(mnt: string, thread: Buffer): void;
  };
  export = load;
}
