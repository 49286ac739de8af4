// One request read from /dev/fuse, to its handler.
#include "session.h"

#include <errno.h>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

namespace {

bool IsWriteOp(uint32_t op) {
  switch (op) {
    case FUSE_SETATTR:
    case FUSE_SYMLINK:
    case FUSE_MKNOD:
    case FUSE_MKDIR:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_RENAME:
    case FUSE_LINK:
    case FUSE_WRITE:
    case FUSE_SETXATTR:
    case FUSE_REMOVEXATTR:
    case FUSE_CREATE:
    case FUSE_FALLOCATE:
    case FUSE_RENAME2:
    case FUSE_COPY_FILE_RANGE:
    case FUSE_TMPFILE:
      return true;
    default:
      return false;
  }
}

}  // namespace

void Session::Handle(int fd, char* buf, size_t n) {
  if (n < sizeof(fuse_in_header)) return;
  fuse_in_header h;
  std::memcpy(&h, buf, sizeof(h));
  if (h.len != n) {
    Send(fd, h.unique, EIO, nullptr, 0);
    return;
  }
  const char* arg = buf + sizeof(h);
  size_t argn = n - sizeof(h);

  switch (h.opcode) {
    case FUSE_FORGET:
      OnForget(h, arg, argn);
      return;
    case FUSE_BATCH_FORGET:
      OnBatchForget(arg, argn);
      return;
    case FUSE_INTERRUPT:
      OnInterrupt(fd, h, arg, argn);
      return;
    case FUSE_NOTIFY_REPLY:
      return;  // no reply expected (we send no retrieve requests)
    case FUSE_DESTROY:
      Send(fd, h.unique, 0, nullptr, 0);
      End("destroy");
      return;
    case FUSE_INIT:
      Send(fd, h.unique, EPROTO, nullptr, 0);
      return;
    default:
      break;
  }
  if (IsWriteOp(h.opcode)) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    Send(fd, h.unique, EROFS, nullptr, 0);
    return;
  }
  switch (h.opcode) {
    case FUSE_LOOKUP:
    case FUSE_GETATTR:
    case FUSE_OPEN:
    case FUSE_RELEASE:
    case FUSE_OPENDIR:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
    case FUSE_READ:
    case FUSE_READLINK:
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR:
    case FUSE_STATFS:
      break;
    case FUSE_RELEASEDIR:
      OnReleasedir(fd, h, arg, argn);
      return;
    default:
      // FLUSH, FSYNC, FSYNCDIR, ACCESS, locks, BMAP, IOCTL, POLL, LSEEK,
      // SYNCFS, STATX and whatever comes later: ENOSYS, which the kernel
      // remembers and then handles itself (or, for flush/fsync, succeeds).
      n_native_.fetch_add(1, std::memory_order_relaxed);
      Send(fd, h.unique, ENOSYS, nullptr, 0);
      return;
  }
  if (h.opcode == FUSE_LOOKUP) {
    OnLookup(fd, h, arg, argn);
    return;
  }
  std::optional<uint64_t> key = cache_.KeyOf(h.nodeid);
  if (!key) {
    Send(fd, h.unique, ESTALE, nullptr, 0);
    return;
  }
  switch (h.opcode) {
    case FUSE_GETATTR:
      OnGetattr(fd, h, *key);
      return;
    case FUSE_OPEN:
      OnOpen(fd, h, arg, argn, *key);
      return;
    case FUSE_RELEASE:
      OnRelease(fd, h, arg, argn, *key);
      return;
    case FUSE_OPENDIR:
      OnOpendir(fd, h, *key);
      return;
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
      OnReaddir(fd, h, arg, argn, *key);
      return;
    case FUSE_READ:
      OnRead(fd, h, arg, argn, *key, buf);
      return;
    case FUSE_READLINK:
      OnReadlink(fd, h, *key);
      return;
    case FUSE_GETXATTR:
      OnGetxattr(fd, h, arg, argn, *key);
      return;
    case FUSE_LISTXATTR:
      OnListxattr(fd, h, arg, argn, *key);
      return;
    case FUSE_STATFS:
      OnStatfs(fd, h, *key);
      return;
    default:
      return;
  }
}

}  // namespace strata_fuse
