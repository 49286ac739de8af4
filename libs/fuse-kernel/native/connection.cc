// The connection's life: mount(2), INIT, the reader threads and their end.
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

Timeout TimeoutFromSeconds(double seconds) {
  Timeout t;
  if (!(seconds > 0)) return t;  // also NaN
  if (seconds > kMaxTimeoutSec) seconds = kMaxTimeoutSec;
  double whole = std::floor(seconds);
  t.sec = static_cast<uint64_t>(whole);
  t.nsec = static_cast<uint32_t>(std::min(999999999.0, std::round((seconds - whole) * 1e9)));
  return t;
}

int64_t ExpiryFromSeconds(double seconds) {
  if (!(seconds > 0)) return 0;
  if (seconds > 1e9) return kNever;
  return MonotonicNs() + static_cast<int64_t>(seconds * 1e9);
}

int Unmount(const std::string& mountpoint) {
  if (umount2(mountpoint.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) return errno;
  return 0;
}

Session::Session(const MountOptions& options, Bridge* bridge)
    : options_(options), bridge_(bridge), cache_(options.root_key, options.cache_limit) {}

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
  const uint32_t pt2 = static_cast<uint32_t>(kFusePassthrough >> 32);
  if (options_.passthrough && (in_flags2 & pt2) != 0) {
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

void Session::Start() {
  fcntl(master_fd_, F_SETFL, fcntl(master_fd_, F_GETFL) | O_NONBLOCK);
  fds_.push_back(master_fd_);
  connection_->fd = master_fd_;
  // The notifier writes on a device of its own, so that on Stop the readers'
  // devices can go (ending what they had read) while a notice still waits
  // in the kernel. A dup of the master is the fallback: Stop then answers
  // what was read there itself.
  {
    int clone = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    uint32_t master = static_cast<uint32_t>(master_fd_);
    if (clone >= 0 && ioctl(clone, FUSE_DEV_IOC_CLONE, &master) == 0) {
      notify_fd_ = clone;
    } else {
      if (clone >= 0) close(clone);
      notify_fd_ = fcntl(master_fd_, F_DUPFD_CLOEXEC, 0);
    }
  }
  if (notify_fd_ >= 0) notifier_ = std::thread(&Session::NotifierLoop, this);
  for (unsigned i = 1; i < options_.threads; i++) {
    int fd = master_fd_;
    if (options_.clone_fd) {
      int clone = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
      uint32_t master = static_cast<uint32_t>(master_fd_);
      if (clone >= 0 && ioctl(clone, FUSE_DEV_IOC_CLONE, &master) == 0) {
        fd = clone;
        fds_.push_back(clone);
      } else if (clone >= 0) {
        close(clone);
      }
    }
    // Created here rather than by the thread: the mount's fds all exist once Mount() returns.
    threads_.emplace_back(&Session::ReaderLoop, this, fd, epoll_create1(EPOLL_CLOEXEC));
  }
  threads_.emplace_back(&Session::ReaderLoop, this, master_fd_, epoll_create1(EPOLL_CLOEXEC));
}

Session::~Session() { Stop(); }

void Session::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
  }
  {
    std::lock_guard<std::mutex> lock(notify_mu_);
    notify_stop_ = true;
    notices_.clear();  // JavaScript settles what it still waits for when the session ends
  }
  notify_cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  {
    // What still waits in JavaScript is answered as the kernel's abort would
    // answer it; a notice the kernel holds may be waiting for one of these.
    std::lock_guard<std::mutex> lock(pending_mu_);
    for (const auto& [id, p] : pending_) Send(p.fd, p.unique, ECONNABORTED, nullptr, 0);
    pending_.clear();
    pending_by_unique_.clear();
  }
  DrainWhileNotifying();
  if (notifier_.joinable()) notifier_.join();
  // Registered files go back while the connection can still take BACKING_CLOSE.
  cache_.TakeAllData().clear();
  {
    std::lock_guard<std::mutex> lock(connection_->mu);
    connection_->fd = -1;
  }
  // Closing the last fd of the connection makes the kernel abort it.
  for (int fd : fds_) close(fd);
  fds_.clear();
  master_fd_ = -1;
  if (notify_fd_ >= 0) close(notify_fd_);
  notify_fd_ = -1;
  if (stop_fd_ >= 0) close(stop_fd_);
  stop_fd_ = -1;
}

void Session::End(const char* reason) {
  if (ended_.exchange(true)) return;
  if (stopping_.load()) return;  // Stop() was asked for: nobody needs to be told
  Event ev;
  ev.kind = Event::kEnd;
  ev.reason = reason;
  bridge_->Post(std::move(ev));
}

void Session::ReaderLoop(int fd, int ep) {
  // One epoll set per thread: the fuse fd is exclusive (one reader woken per
  // request), the stop eventfd is not (every reader wakes on Stop).
  if (ep < 0) {
    End("error");
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = stop_fd_;
  epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd_, &ev);
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.fd = fd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    ev.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  std::unique_ptr<char[]> buf(new char[bufsize_]);
  while (!stopping_.load(std::memory_order_relaxed)) {
    ssize_t n = read(fd, buf.get(), bufsize_);
    if (n < 0) {
      int e = errno;
      if (e == EAGAIN) {
        epoll_event events[2];
        int r = epoll_wait(ep, events, 2, -1);
        if (r < 0 && errno != EINTR) break;
        continue;
      }
      if (e == EINTR || e == ENOENT) continue;  // ENOENT: the request was interrupted before we read it
      if (e == ENODEV) {
        End("kernel");  // unmounted (the last reference went) or aborted
        break;
      }
      End("error");
      break;
    }
    n_requests_.fetch_add(1, std::memory_order_relaxed);
    Handle(fd, buf.get(), static_cast<size_t>(n));
  }
  close(ep);
}

}  // namespace strata_fuse
