// Making a connection: mount(2) with a fresh /dev/fuse fd, then INIT, read
// and answered before any reader starts; and detaching a mount. A session
// that takes over a live connection (issue 27) skips all of this and goes
// straight to Session::Start in connection.cc.
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

int Unmount(const std::string& mountpoint) {
  if (umount2(mountpoint.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) return errno;
  return 0;
}

std::unique_ptr<Session> Session::Mount(const MountOptions& options, Bridge* bridge, int* err, std::string* what) {
  std::unique_ptr<Session> s(new Session(options, bridge));
  s->options_.threads = std::clamp(options.threads, 1u, 64u);
  s->options_.max_pages = std::clamp(options.max_pages, 1u, 256u);
  s->bufsize_ = static_cast<size_t>(s->options_.max_pages) * 4096 + kHeaderRoom;

  // Without the stop eventfd the readers could not be woken to stop: no mount.
  s->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->stop_fd_ < 0) {
    *err = errno;
    *what = "eventfd";
    return nullptr;
  }
  s->master_fd_ = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (s->master_fd_ < 0) {
    *err = errno;
    *what = "open /dev/fuse";
    return nullptr;
  }
  const uint64_t uid = options.owner_uid >= 0 ? static_cast<uint64_t>(options.owner_uid) : getuid();
  const uint64_t gid = options.owner_gid >= 0 ? static_cast<uint64_t>(options.owner_gid) : getgid();
  std::string data = "fd=" + std::to_string(s->master_fd_) + ",rootmode=40000,user_id=" + std::to_string(uid) +
                     ",group_id=" + std::to_string(gid);
  if (options.allow_other) data += ",allow_other";
  if (options.default_permissions) data += ",default_permissions";
  unsigned long flags = MS_RDONLY;
  if (!options.exec) flags |= MS_NOEXEC;
  if (!options.suid) flags |= MS_NOSUID;
  if (!options.dev) flags |= MS_NODEV;
  std::string type = options.subtype.empty() ? "fuse" : "fuse." + options.subtype;
  if (mount(options.fsname.c_str(), options.mountpoint.c_str(), type.c_str(), flags, data.c_str()) != 0) {
    *err = errno;
    *what = "mount " + options.mountpoint;
    close(s->master_fd_);
    s->master_fd_ = -1;
    return nullptr;
  }
  if (s->Negotiate(err, what) != 0) {
    Unmount(options.mountpoint);
    close(s->master_fd_);
    s->master_fd_ = -1;
    return nullptr;
  }
  s->KeepOpenModes(options.generation, false);
  s->Start();
  return s;
}

// The kernel queues INIT while mount(2) runs, so it is read here, before any
// reader starts: a mount either comes back negotiated or fails whole.
int Session::Negotiate(int* err, std::string* what) {
  std::vector<char> buf(bufsize_);
  pollfd pfd{master_fd_, POLLIN, 0};
  int pr = poll(&pfd, 1, kInitTimeoutMs);
  if (pr <= 0) {
    *err = pr == 0 ? ETIMEDOUT : errno;
    *what = "waiting for FUSE_INIT";
    return -1;
  }
  ssize_t n = read(master_fd_, buf.data(), buf.size());
  if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) {
    *err = n < 0 ? errno : EPROTO;
    *what = "reading FUSE_INIT";
    return -1;
  }
  fuse_in_header h;
  std::memcpy(&h, buf.data(), sizeof(h));
  // The first fields of fuse_init_in have been the same since 7.6.
  struct {
    uint32_t major, minor, max_readahead, flags;
  } in{};
  uint32_t in_flags2 = 0;
  if (h.opcode != FUSE_INIT || !ReadArg(buf.data() + sizeof(h), n - sizeof(h), &in)) {
    *err = EPROTO;
    *what = "expected FUSE_INIT";
    return -1;
  }
  // flags2 follows (7.36+) and counts only when the kernel says FUSE_INIT_EXT.
  if ((in.flags & FUSE_INIT_EXT) != 0 && n - sizeof(h) >= sizeof(in) + sizeof(uint32_t)) {
    std::memcpy(&in_flags2, buf.data() + sizeof(h) + sizeof(in), sizeof(uint32_t));
  }
  if (in.major != FUSE_KERNEL_VERSION || in.minor < kMinMinor) {
    Send(master_fd_, h.unique, EPROTO, nullptr, 0);
    *err = EPROTO;
    *what = "kernel FUSE protocol " + std::to_string(in.major) + "." + std::to_string(in.minor) +
            " (7." + std::to_string(kMinMinor) + " or later needed)";
    return -1;
  }
  uint32_t want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_ASYNC_DIO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES |
                  FUSE_CACHE_SYMLINKS;
  if (options_.readdirplus >= 1) want |= FUSE_DO_READDIRPLUS;
  if (options_.readdirplus == 1) want |= FUSE_READDIRPLUS_AUTO;
  // Sealed data never changes; LIVE data may, so its page cache follows mtime.
  if (!options_.keep_cache) want |= FUSE_AUTO_INVAL_DATA;
  fuse_init_out out{};
  out.major = FUSE_KERNEL_VERSION;
  out.minor = std::min<uint32_t>(in.minor, FUSE_KERNEL_MINOR_VERSION);
  out.max_readahead = in.max_readahead;
  out.flags = want & in.flags;
  out.max_background = 64;
  out.congestion_threshold = 48;
  out.max_write = static_cast<uint32_t>(options_.max_pages) * 4096;
  out.time_gran = 1;
  out.max_pages = static_cast<uint16_t>(options_.max_pages);
  // The kernel offers FUSE_NO_OPEN_SUPPORT (7.23+): an OPEN answered ENOSYS
  // then succeeds and none is sent again. Passthrough needs OPEN answers, so
  // it is not asked for: nothing could ever use it.
  kernel_opens_ = options_.kernel_opens && out.minor >= 23 && (in.flags & FUSE_NO_OPEN_SUPPORT) != 0;
  const uint32_t pt2 = static_cast<uint32_t>(kFusePassthrough >> 32);
  if (options_.passthrough && !kernel_opens_ && (in_flags2 & pt2) != 0) {
    out.flags |= FUSE_INIT_EXT;
    out.flags2 = pt2;
    out.unused[0] = std::clamp(options_.max_stack_depth, 1u, 2u);  // max_stack_depth (7.40)
  }
  int e = Send(master_fd_, h.unique, 0, &out, sizeof(out));
  if (e != 0) {
    *err = e;
    *what = "replying to FUSE_INIT";
    return -1;
  }
  proto_minor_ = out.minor;
  flags_ = out.flags;
  passthrough_ = (out.flags2 & pt2) != 0;
  return 0;
}

}  // namespace strata_fuse
