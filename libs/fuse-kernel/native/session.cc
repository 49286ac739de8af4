#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace strata_fuse {

namespace {

constexpr uint32_t kMinMinor = 28;  // max_pages and cache_symlinks
constexpr size_t kHeaderRoom = 0x1000;
constexpr size_t kXattrMax = 65536;  // XATTR_SIZE_MAX and XATTR_LIST_MAX
constexpr size_t kLinkMax = 4095;    // the kernel reads a link target into one page, NUL included
constexpr int kInitTimeoutMs = 10000;

// Time the kernel counts as "forever": timespec64_to_jiffies saturates far below it.
constexpr double kMaxTimeoutSec = 1e9;

template <typename T>
bool ReadArg(const char* arg, size_t n, T* out) {
  if (n < sizeof(T)) return false;
  std::memcpy(out, arg, sizeof(T));
  return true;
}

// A NUL-terminated name at arg, within n bytes.
bool ReadName(const char* arg, size_t n, std::string* out) {
  const void* nul = std::memchr(arg, 0, n);
  if (nul == nullptr) return false;
  out->assign(arg, static_cast<const char*>(nul) - arg);
  return true;
}

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

// ---- invalidation notices ----

void Session::NotifierLoop() {
  for (;;) {
    Notice n;
    {
      std::unique_lock<std::mutex> lock(notify_mu_);
      notify_cv_.wait(lock, [this] { return notify_stop_ || !notices_.empty(); });
      if (notify_stop_) return;
      n = std::move(notices_.front());
      notices_.pop_front();
      notify_busy_ = true;
    }
    // The kernel handles a notice inside write(2), and may wait there for a
    // lock a request in JavaScript holds: hence this thread.
    fuse_out_header out{};
    out.len = static_cast<uint32_t>(sizeof(out) + n.payload.size());
    out.error = n.code;
    out.unique = 0;
    struct iovec v[2] = {{&out, sizeof(out)}, {n.payload.data(), n.payload.size()}};
    ssize_t w;
    do {
      w = writev(notify_fd_, v, 2);
    } while (w < 0 && errno == EINTR);
    int e = w < 0 ? errno : 0;
    {
      std::lock_guard<std::mutex> lock(notify_mu_);
      notify_busy_ = false;
    }
    if (stopping_.load()) continue;  // the loop ends at the top
    Event ev;
    ev.kind = Event::kNotified;
    ev.keys = {n.token, static_cast<uint64_t>(e)};
    bridge_->Post(std::move(ev));
  }
}

int64_t Session::Notify(int code, std::string payload) {
  uint64_t token;
  {
    std::lock_guard<std::mutex> lock(notify_mu_);
    if (notify_stop_ || notify_fd_ < 0 || ended_.load()) return -ENOTCONN;
    token = next_token_++;
    notices_.push_back(Notice{token, code, std::move(payload)});
  }
  notify_cv_.notify_one();
  return static_cast<int64_t>(token);
}

// Stop() with a notice still in the kernel: the write may wait for a request
// nobody reads any more (a READ holding a page lock, a LOOKUP holding the
// directory). Read and refuse whatever arrives on the notifier's device until
// the write returns.
void Session::DrainWhileNotifying() {
  if (notify_fd_ < 0) return;
  std::unique_ptr<char[]> buf;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(notify_mu_);
      if (!notify_busy_) return;
    }
    if (!buf) buf.reset(new char[bufsize_]);
    pollfd pfd{notify_fd_, POLLIN, 0};
    poll(&pfd, 1, 10);
    ssize_t n = read(notify_fd_, buf.get(), bufsize_);
    if (n < 0) {
      if (errno == ENODEV) return;  // aborted: the write fails out by itself
      continue;
    }
    if (static_cast<size_t>(n) < sizeof(fuse_in_header)) continue;
    fuse_in_header h;
    std::memcpy(&h, buf.get(), sizeof(h));
    switch (h.opcode) {
      case FUSE_FORGET:
      case FUSE_BATCH_FORGET:
      case FUSE_INTERRUPT:
      case FUSE_NOTIFY_REPLY:
        break;  // no answer expected
      default:
        Send(notify_fd_, h.unique, ECONNABORTED, nullptr, 0);
    }
  }
}

int64_t Session::InvalidateInode(uint64_t key, int64_t offset, int64_t length) {
  cache_.Invalidate(key);
  std::optional<uint64_t> nodeid = cache_.NodeidOf(key);
  if (!nodeid) return 0;  // the kernel holds nothing of it
  fuse_notify_inval_inode_out out{};
  out.ino = *nodeid;
  out.off = offset;
  out.len = length;
  return Notify(FUSE_NOTIFY_INVAL_INODE, std::string(reinterpret_cast<const char*>(&out), sizeof(out)));
}

int64_t Session::InvalidateEntry(uint64_t parent, const std::string& name) {
  cache_.InvalidateEntry(parent, name);
  std::optional<uint64_t> nodeid = cache_.NodeidOf(parent);
  if (!nodeid) return 0;
  fuse_notify_inval_entry_out out{};
  out.parent = *nodeid;
  out.namelen = static_cast<uint32_t>(name.size());
  std::string payload(reinterpret_cast<const char*>(&out), sizeof(out));
  payload += name;
  payload.push_back('\0');  // the kernel checks for it
  return Notify(FUSE_NOTIFY_INVAL_ENTRY, std::move(payload));
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

int Session::SendV(int fd, uint64_t unique, int error, const struct iovec* iov, int n) {
  fuse_out_header out{};
  struct iovec v[8];
  v[0].iov_base = &out;
  v[0].iov_len = sizeof(out);
  size_t len = sizeof(out);
  for (int i = 0; i < n && i < 7; i++) {
    v[i + 1] = iov[i];
    len += iov[i].iov_len;
  }
  out.len = static_cast<uint32_t>(len);
  out.error = -error;
  out.unique = unique;
  ssize_t w = writev(fd, v, std::min(n, 7) + 1);
  if (w < 0) return errno;
  return 0;
}

int Session::Send(int fd, uint64_t unique, int error, const void* data, size_t size) {
  if (error != 0 || size == 0) return SendV(fd, unique, error, nullptr, 0);
  struct iovec v{const_cast<void*>(data), size};
  return SendV(fd, unique, 0, &v, 1);
}

void Session::SendEntry(int fd, uint64_t unique, uint64_t key, const fuse_attr& attr, Timeout entry,
                        Timeout attr_timeout, const AttrRecord* seed) {
  uint64_t nodeid = cache_.Reference(key, seed);
  fuse_entry_out out{};
  out.nodeid = nodeid;
  out.generation = 0;
  out.entry_valid = entry.sec;
  out.entry_valid_nsec = entry.nsec;
  out.attr_valid = attr_timeout.sec;
  out.attr_valid_nsec = attr_timeout.nsec;
  out.attr = attr;
  if (Send(fd, unique, 0, &out, sizeof(out)) != 0) {
    // The kernel never took the entry (interrupted, aborted): undo its count.
    cache_.Forget(nodeid, 1, nullptr);
  }
}

void Session::ToJs(Pending&& p) {
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    p.id = next_id_++;
    pending_by_unique_[p.unique] = p.id;
    pending_.emplace(p.id, p);
  }
  n_js_.fetch_add(1, std::memory_order_relaxed);
  Event ev;
  ev.kind = Event::kRequest;
  ev.request = std::move(p);
  bridge_->Post(std::move(ev));
}

std::optional<Pending> Session::Take(uint64_t id) {
  std::lock_guard<std::mutex> lock(pending_mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return std::nullopt;
  Pending p = std::move(it->second);
  pending_.erase(it);
  pending_by_unique_.erase(p.unique);
  return p;
}

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

static Pending PendingFor(int fd, const fuse_in_header& h, uint64_t key) {
  Pending p;
  p.unique = h.unique;
  p.fd = fd;
  p.opcode = h.opcode;
  p.nodeid = h.nodeid;
  p.key = key;
  p.uid = h.uid;
  p.gid = h.gid;
  p.pid = h.pid;
  return p;
}

void Session::OnLookup(int fd, const fuse_in_header& h, const char* arg, size_t n) {
  std::string name;
  if (!ReadName(arg, n, &name) || name.empty()) {
    Send(fd, h.unique, EINVAL, nullptr, 0);
    return;
  }
  std::optional<uint64_t> parent = cache_.KeyOf(h.nodeid);
  if (!parent) {
    Send(fd, h.unique, ESTALE, nullptr, 0);
    return;
  }
  LookupAnswer a = cache_.Lookup(*parent, name, MonotonicNs(), options_.negative_timeout);
  if (a.kind == LookupAnswer::kPositive) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    AttrRecord seed{a.attr, a.attr_timeout, kNever};
    SendEntry(fd, h.unique, a.key, a.attr, a.entry_timeout, a.attr_timeout, &seed);
    return;
  }
  if (a.kind == LookupAnswer::kNegative) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    if (a.entry_timeout.sec == 0 && a.entry_timeout.nsec == 0) {
      Send(fd, h.unique, ENOENT, nullptr, 0);
    } else {
      fuse_entry_out out{};
      out.entry_valid = a.entry_timeout.sec;
      out.entry_valid_nsec = a.entry_timeout.nsec;
      Send(fd, h.unique, 0, &out, sizeof(out));
    }
    return;
  }
  Pending p = PendingFor(fd, h, *parent);
  p.name = std::move(name);
  ToJs(std::move(p));
}

void Session::ForgetKeys(std::vector<uint64_t>&& keys) {
  if (keys.empty() || !options_.notify_forget) return;
  Event ev;
  ev.kind = Event::kForget;
  ev.keys = std::move(keys);
  bridge_->Post(std::move(ev));
}

void Session::OnForget(const fuse_in_header& h, const char* arg, size_t n) {
  fuse_forget_in in{};
  if (!ReadArg(arg, n, &in)) return;
  std::vector<uint64_t> dropped;
  cache_.Forget(h.nodeid, in.nlookup, &dropped);
  ForgetKeys(std::move(dropped));
}

void Session::OnBatchForget(const char* arg, size_t n) {
  fuse_batch_forget_in in{};
  if (!ReadArg(arg, n, &in)) return;
  const char* p = arg + sizeof(in);
  size_t left = n - sizeof(in);
  std::vector<uint64_t> dropped;
  for (uint32_t i = 0; i < in.count && left >= sizeof(fuse_forget_one); i++) {
    fuse_forget_one one;
    std::memcpy(&one, p, sizeof(one));
    cache_.Forget(one.nodeid, one.nlookup, &dropped);
    p += sizeof(one);
    left -= sizeof(one);
  }
  ForgetKeys(std::move(dropped));
}

void Session::OnGetattr(int fd, const fuse_in_header& h, uint64_t key) {
  std::optional<AttrRecord> rec = cache_.Attr(key, MonotonicNs());
  if (rec) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    fuse_attr_out out{};
    out.attr_valid = rec->attr_timeout.sec;
    out.attr_valid_nsec = rec->attr_timeout.nsec;
    out.attr = rec->attr;
    Send(fd, h.unique, 0, &out, sizeof(out));
    return;
  }
  ToJs(PendingFor(fd, h, key));
}

void Session::OnOpen(int fd, const fuse_in_header& h, const char* arg, size_t n, uint64_t key) {
  n_native_.fetch_add(1, std::memory_order_relaxed);
  fuse_open_in in{};
  if (!ReadArg(arg, n, &in)) {
    Send(fd, h.unique, EINVAL, nullptr, 0);
    return;
  }
  if ((in.flags & O_ACCMODE) != O_RDONLY || (in.flags & O_TRUNC) != 0) {
    Send(fd, h.unique, EROFS, nullptr, 0);
    return;
  }
  OpenOut out{};
  bool through = false;
  {
    std::lock_guard<std::mutex> lock(opens_mu_);
    OpenModes& m = opens_[key];
    if (m.passthrough > 0) {
      through = true;
    } else if (passthrough_ && m.cached == 0) {
      std::shared_ptr<const FileData> data = cache_.Data(key);
      if (data && data->backing_id() >= 0) {
        m.backing = std::move(data);
        through = true;
      }
    }
    if (through) {
      m.passthrough++;
      out.backing_id = m.backing->backing_id();
    } else {
      m.cached++;
    }
  }
  out.fh = (next_fh_.fetch_add(1) << 1) | (through ? 1 : 0);
  out.open_flags = through ? FOPEN_NOFLUSH | kFopenPassthrough : FOPEN_NOFLUSH | (options_.keep_cache ? FOPEN_KEEP_CACHE : 0);
  Send(fd, h.unique, 0, &out, sizeof(out));
  if (options_.notify_open) {
    // Answered first: an audit trail must not make opens wait for JavaScript.
    Event ev;
    ev.kind = Event::kOpen;
    ev.keys = {key, out.fh, h.uid, h.gid, h.pid};
    bridge_->Post(std::move(ev));
  }
}

void Session::Closed(uint64_t key, uint64_t fh) {
  std::shared_ptr<const FileData> last;  // given back outside the lock (BACKING_CLOSE)
  std::lock_guard<std::mutex> lock(opens_mu_);
  auto it = opens_.find(key);
  if (it == opens_.end()) return;
  OpenModes& m = it->second;
  if ((fh & 1) != 0) {
    if (m.passthrough > 0 && --m.passthrough == 0) last = std::move(m.backing);
  } else if (m.cached > 0) {
    m.cached--;
  }
  if (m.cached == 0 && m.passthrough == 0) opens_.erase(it);
}

int Session::SetFileData(uint64_t key, int fd, int mode) {
  if (mode == kServeAuto) mode = passthrough_ ? kServePassthrough : kServePread;
  if (mode == kServePassthrough) {
    if (!passthrough_) return -EOPNOTSUPP;
    BackingMap map{fd, 0, 0};
    int id = ioctl(master_fd_, kIocBackingOpen, &map);
    if (id < 0) return -errno;
    // The old registration (if any) is released here, outside the cache's lock.
    cache_.PutData(key, FileData::Backing(id, connection_));
    return kServePassthrough;
  }
  if (mode != kServePread) return -EINVAL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return -errno;
  cache_.PutData(key, FileData::Pread(copy));
  return kServePread;
}

int Session::ClearFileData(uint64_t key) {
  // The dup is closed (or the backing id given back) by the last user: this
  // scope, or a reader still in its pread.
  std::shared_ptr<const FileData> data = cache_.TakeData(key);
  return data ? 0 : -ENOENT;
}

void Session::OnRelease(int fd, const fuse_in_header& h, const char* arg, size_t n, uint64_t key) {
  n_native_.fetch_add(1, std::memory_order_relaxed);
  fuse_release_in in{};
  ReadArg(arg, n, &in);
  Closed(key, in.fh);
  Send(fd, h.unique, 0, nullptr, 0);
  if (options_.notify_release) {
    Event ev;
    ev.kind = Event::kRelease;
    ev.keys = {key, in.fh};
    bridge_->Post(std::move(ev));
  }
}

void Session::OnOpendir(int fd, const fuse_in_header& h, uint64_t key) {
  n_native_.fetch_add(1, std::memory_order_relaxed);
  fuse_open_out out{};
  out.fh = next_fh_.fetch_add(1);
  if (options_.keep_cache) out.open_flags = FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE;
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    dirs_.emplace(out.fh, DirHandle{key, nullptr});
  }
  if (Send(fd, h.unique, 0, &out, sizeof(out)) != 0) {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    dirs_.erase(out.fh);
  }
}

void Session::OnReleasedir(int fd, const fuse_in_header& h, const char* arg, size_t n) {
  n_native_.fetch_add(1, std::memory_order_relaxed);
  fuse_release_in in{};
  if (ReadArg(arg, n, &in)) {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    dirs_.erase(in.fh);
  }
  Send(fd, h.unique, 0, nullptr, 0);
}

void Session::OnReaddir(int fd, const fuse_in_header& h, const char* arg, size_t n, uint64_t key) {
  fuse_read_in in{};
  if (!ReadArg(arg, n, &in)) {
    Send(fd, h.unique, EINVAL, nullptr, 0);
    return;
  }
  std::shared_ptr<const Listing> listing;
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    auto it = dirs_.find(in.fh);
    if (it != dirs_.end()) listing = it->second.listing;
  }
  if (!listing) {
    listing = cache_.GetListing(key, MonotonicNs());
    if (listing) {
      std::lock_guard<std::mutex> lock(dirs_mu_);
      auto it = dirs_.find(in.fh);
      if (it != dirs_.end() && !it->second.listing) it->second.listing = listing;
    }
  }
  if (listing) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    SendListing(fd, h.unique, h.opcode == FUSE_READDIRPLUS, *listing, key, in.offset, in.size);
    return;
  }
  Pending p = PendingFor(fd, h, key);
  p.fh = in.fh;
  p.offset = in.offset;
  p.size = in.size;
  ToJs(std::move(p));
}

void Session::SendListing(int fd, uint64_t unique, bool plus, const Listing& listing, uint64_t dir_key,
                          uint64_t offset, uint32_t size) {
  size = std::min<uint32_t>(size, static_cast<uint32_t>(bufsize_));
  std::vector<char> out(size);
  size_t used = 0;
  std::vector<uint64_t> counted;  // nodeids handed out in this reply
  const int64_t now = MonotonicNs();
  uint64_t dot = listing.dot_ino;
  if (dot == 0) {
    std::optional<AttrRecord> rec = cache_.Attr(dir_key, now);
    dot = rec ? rec->attr.ino : dir_key;
  }
  uint64_t dotdot = listing.dotdot_ino != 0 ? listing.dotdot_ino : dot;
  const uint64_t total = 2 + listing.entries.size();
  for (uint64_t i = offset; i < total; i++) {
    const ListEntry* e = i >= 2 ? &listing.entries[i - 2] : nullptr;
    std::string_view name = e ? std::string_view(e->name) : (i == 0 ? std::string_view(".") : std::string_view(".."));
    size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
    size_t rec = FUSE_DIRENT_ALIGN(head + name.size());
    if (used + rec > size) break;
    char* p = out.data() + used;
    std::memset(p, 0, rec);
    fuse_dirent d{};
    d.ino = e ? e->ino : (i == 0 ? dot : dotdot);
    d.off = i + 1;
    d.namelen = static_cast<uint32_t>(name.size());
    d.type = e ? e->type : 4 /* DT_DIR */;
    if (plus) {
      fuse_entry_out eo{};
      if (e != nullptr && e->has_attr) {
        // A cached listing also answers the GETATTRs that follow; one that
        // is not cached leaves nothing behind.
        AttrRecord seed{e->attr, listing.attr_timeout, listing.expires};
        // Nodeid 0 (the name only) for an entry invalidated since the listing was made.
        eo.nodeid = cache_.ReferenceListed(e->key, listing.expires > now ? &seed : nullptr, listing.made);
        if (eo.nodeid != 0) {
          counted.push_back(eo.nodeid);
          eo.entry_valid = listing.entry_timeout.sec;
          eo.entry_valid_nsec = listing.entry_timeout.nsec;
          eo.attr_valid = listing.attr_timeout.sec;
          eo.attr_valid_nsec = listing.attr_timeout.nsec;
          eo.attr = e->attr;
        }
      }
      std::memcpy(p, &eo, sizeof(eo));
      std::memcpy(p + sizeof(eo), &d, FUSE_NAME_OFFSET);
    } else {
      std::memcpy(p, &d, FUSE_NAME_OFFSET);
    }
    std::memcpy(p + head, name.data(), name.size());
    used += rec;
  }
  if (Send(fd, unique, 0, out.data(), used) != 0) {
    for (uint64_t nodeid : counted) cache_.Forget(nodeid, 1, nullptr);
  }
}

void Session::OnRead(int fd, const fuse_in_header& h, const char* arg, size_t n, uint64_t key, char* buf) {
  fuse_read_in in{};
  if (!ReadArg(arg, n, &in)) {
    Send(fd, h.unique, EINVAL, nullptr, 0);
    return;
  }
  std::shared_ptr<const FileData> data = cache_.Data(key);
  if (data && data->fd() >= 0) {
    // The request has been parsed: its buffer takes the data. Short at the
    // end of the file, empty past it; any failure is this READ's EIO.
    const size_t want = std::min<size_t>(in.size, bufsize_);
    size_t got = 0;
    bool failed = in.offset > static_cast<uint64_t>(INT64_MAX - static_cast<int64_t>(want));
    while (!failed && got < want) {
      ssize_t r = pread(data->fd(), buf + got, want - got, static_cast<off_t>(in.offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) failed = true;
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    n_native_.fetch_add(1, std::memory_order_relaxed);
    if (failed) {
      n_pread_errors_.fetch_add(1, std::memory_order_relaxed);
      Send(fd, h.unique, EIO, nullptr, 0);
    } else {
      n_pread_.fetch_add(1, std::memory_order_relaxed);
      Send(fd, h.unique, 0, buf, got);
    }
    return;
  }
  Pending p = PendingFor(fd, h, key);
  p.fh = in.fh;
  p.offset = in.offset;
  p.size = in.size;
  ToJs(std::move(p));
}

void Session::OnReadlink(int fd, const fuse_in_header& h, uint64_t key) {
  std::optional<std::string> target = cache_.Link(key, MonotonicNs());
  if (target) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    Send(fd, h.unique, 0, target->data(), target->size());
    return;
  }
  ToJs(PendingFor(fd, h, key));
}

void Session::SendXattr(int fd, uint64_t unique, uint32_t size, const char* data, size_t len) {
  if (len > kXattrMax) {
    Send(fd, unique, E2BIG, nullptr, 0);
  } else if (size == 0) {
    fuse_getxattr_out out{};
    out.size = static_cast<uint32_t>(len);
    Send(fd, unique, 0, &out, sizeof(out));
  } else if (len > size) {
    Send(fd, unique, ERANGE, nullptr, 0);
  } else {
    Send(fd, unique, 0, data, len);
  }
}

void Session::OnGetxattr(int fd, const fuse_in_header& h, const char* arg, size_t n, uint64_t key) {
  fuse_getxattr_in in{};
  std::string name;
  if (!ReadArg(arg, n, &in) || !ReadName(arg + sizeof(in), n - sizeof(in), &name)) {
    Send(fd, h.unique, EINVAL, nullptr, 0);
    return;
  }
  std::shared_ptr<const XattrSet> set = cache_.Xattrs(key, MonotonicNs());
  if (set) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    for (const auto& [k, v] : set->items) {
      if (k == name) {
        SendXattr(fd, h.unique, in.size, v.data(), v.size());
        return;
      }
    }
    Send(fd, h.unique, ENODATA, nullptr, 0);
    return;
  }
  Pending p = PendingFor(fd, h, key);
  p.name = std::move(name);
  p.size = in.size;
  ToJs(std::move(p));
}

void Session::OnListxattr(int fd, const fuse_in_header& h, const char* arg, size_t n, uint64_t key) {
  fuse_getxattr_in in{};
  if (!ReadArg(arg, n, &in)) {
    Send(fd, h.unique, EINVAL, nullptr, 0);
    return;
  }
  std::shared_ptr<const XattrSet> set = cache_.Xattrs(key, MonotonicNs());
  if (set) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    std::string names;
    for (const auto& item : set->items) {
      names += item.first;
      names.push_back('\0');
    }
    SendXattr(fd, h.unique, in.size, names.data(), names.size());
    return;
  }
  Pending p = PendingFor(fd, h, key);
  p.size = in.size;
  ToJs(std::move(p));
}

void Session::OnStatfs(int fd, const fuse_in_header& h, uint64_t key) {
  {
    std::lock_guard<std::mutex> lock(statfs_mu_);
    if (statfs_ && statfs_->second > MonotonicNs()) {
      n_native_.fetch_add(1, std::memory_order_relaxed);
      fuse_statfs_out out{};
      out.st = statfs_->first;
      Send(fd, h.unique, 0, &out, sizeof(out));
      return;
    }
  }
  ToJs(PendingFor(fd, h, key));
}

void Session::OnInterrupt(int fd, const fuse_in_header& h, const char* arg, size_t n) {
  fuse_interrupt_in in{};
  if (!ReadArg(arg, n, &in)) return;
  n_interrupts_.fetch_add(1, std::memory_order_relaxed);
  std::optional<Pending> p;
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    auto it = pending_by_unique_.find(in.unique);
    if (it != pending_by_unique_.end()) {
      auto pit = pending_.find(it->second);
      if (pit != pending_.end()) {
        p = std::move(pit->second);
        pending_.erase(pit);
      }
      pending_by_unique_.erase(it);
    }
  }
  if (p) {
    // Waiting in JavaScript: answer EINTR now so the caller (even one being
    // killed) is not held; the late answer is dropped.
    Send(p->fd, p->unique, EINTR, nullptr, 0);
    return;
  }
  // Not (yet) ours to wait on: either answered already, or still being read
  // by another thread. EAGAIN asks the kernel to send the interrupt again if
  // the request is still outstanding.
  Send(fd, h.unique, EAGAIN, nullptr, 0);
}

// ---- replies from JavaScript ----

int Session::ReplyError(uint64_t id, int error) {
  std::optional<Pending> p = Take(id);
  if (!p) return -ENOENT;
  if (error <= 0 || error > 4095) error = EIO;
  Send(p->fd, p->unique, error, nullptr, 0);
  return 0;
}

int Session::ReplyEntry(uint64_t id, uint64_t key, const fuse_attr& attr, Timeout entry, Timeout attr_timeout,
                        int64_t cache_expires) {
  std::optional<Pending> p = Take(id);
  if (!p) return -ENOENT;
  if (p->opcode != FUSE_LOOKUP) {
    Send(p->fd, p->unique, EIO, nullptr, 0);
    return -EINVAL;
  }
  AttrRecord rec{attr, attr_timeout, cache_expires};
  if (cache_expires > 0) {
    cache_.PutAttr(key, rec);
    cache_.PutEntry(p->key, p->name, key, entry, cache_expires);
  }
  SendEntry(p->fd, p->unique, key, attr, entry, attr_timeout, nullptr);
  return 0;
}

int Session::ReplyNegative(uint64_t id, Timeout entry, int64_t cache_expires) {
  std::optional<Pending> p = Take(id);
  if (!p) return -ENOENT;
  if (p->opcode != FUSE_LOOKUP) {
    Send(p->fd, p->unique, EIO, nullptr, 0);
    return -EINVAL;
  }
  if (cache_expires > 0) cache_.PutNegative(p->key, p->name, entry, cache_expires);
  if (entry.sec == 0 && entry.nsec == 0) {
    Send(p->fd, p->unique, ENOENT, nullptr, 0);
  } else {
    fuse_entry_out out{};
    out.entry_valid = entry.sec;
    out.entry_valid_nsec = entry.nsec;
    Send(p->fd, p->unique, 0, &out, sizeof(out));
  }
  return 0;
}

int Session::ReplyAttr(uint64_t id, const fuse_attr& attr, Timeout attr_timeout, int64_t cache_expires) {
  std::optional<Pending> p = Take(id);
  if (!p) return -ENOENT;
  if (p->opcode != FUSE_GETATTR) {
    Send(p->fd, p->unique, EIO, nullptr, 0);
    return -EINVAL;
  }
  if (cache_expires > 0) cache_.PutAttr(p->key, AttrRecord{attr, attr_timeout, cache_expires});
  fuse_attr_out out{};
  out.attr_valid = attr_timeout.sec;
  out.attr_valid_nsec = attr_timeout.nsec;
  out.attr = attr;
  Send(p->fd, p->unique, 0, &out, sizeof(out));
  return 0;
}

int Session::ReplyListing(uint64_t id, std::shared_ptr<Listing> listing, bool cache) {
  std::optional<Pending> p = Take(id);
  if (!p) return -ENOENT;
  if (p->opcode != FUSE_READDIR && p->opcode != FUSE_READDIRPLUS) {
    Send(p->fd, p->unique, EIO, nullptr, 0);
    return -EINVAL;
  }
  listing->BuildIndex();
  std::shared_ptr<const Listing> shared = listing;
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    auto it = dirs_.find(p->fh);
    if (it != dirs_.end()) {
      if (it->second.listing) {
        shared = it->second.listing;  // offsets stay those of the listing the handle already read
      } else {
        it->second.listing = shared;
      }
    }
  }
  if (cache) cache_.PutListing(p->key, shared);
  SendListing(p->fd, p->unique, p->opcode == FUSE_READDIRPLUS, *shared, p->key, p->offset, p->size);
  return 0;
}

int Session::ReplyData(uint64_t id, const char* data, size_t size) {
  std::optional<Pending> p = Take(id);
  if (!p) return -ENOENT;
  if (p->opcode != FUSE_READ) {
    Send(p->fd, p->unique, EIO, nullptr, 0);
    return -EINVAL;
  }
  Send(p->fd, p->unique, 0, data, std::min<size_t>(size, p->size));
  return 0;
}

int Session::ReplyLink(uint64_t id, std::string target, int64_t cache_expires) {
  std::optional<Pending> p = Take(id);
  if (!p) return -ENOENT;
  if (p->opcode != FUSE_READLINK) {
    Send(p->fd, p->unique, EIO, nullptr, 0);
    return -EINVAL;
  }
  if (target.size() > kLinkMax) {
    Send(p->fd, p->unique, ENAMETOOLONG, nullptr, 0);
    return 0;
  }
  Send(p->fd, p->unique, 0, target.data(), target.size());
  if (cache_expires > 0) cache_.PutLink(p->key, std::move(target), cache_expires);
  return 0;
}

int Session::ReplyXattr(uint64_t id, const char* data, size_t size) {
  std::optional<Pending> p = Take(id);
  if (!p) return -ENOENT;
  if (p->opcode != FUSE_GETXATTR && p->opcode != FUSE_LISTXATTR) {
    Send(p->fd, p->unique, EIO, nullptr, 0);
    return -EINVAL;
  }
  SendXattr(p->fd, p->unique, p->size, data, size);
  return 0;
}

int Session::ReplyStatfs(uint64_t id, const fuse_kstatfs& st, int64_t cache_expires) {
  std::optional<Pending> p = Take(id);
  if (!p) return -ENOENT;
  if (p->opcode != FUSE_STATFS) {
    Send(p->fd, p->unique, EIO, nullptr, 0);
    return -EINVAL;
  }
  if (cache_expires > 0) CacheStatfs(st, cache_expires);
  fuse_statfs_out out{};
  out.st = st;
  Send(p->fd, p->unique, 0, &out, sizeof(out));
  return 0;
}

void Session::CacheStatfs(const fuse_kstatfs& st, int64_t expires) {
  std::lock_guard<std::mutex> lock(statfs_mu_);
  statfs_ = std::make_pair(st, expires);
}

std::vector<uint64_t> Session::LiveKeys() {
  std::vector<uint64_t> keys;
  cache_.LiveKeys(&keys);
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    for (const auto& [fh, d] : dirs_) {
      keys.push_back(d.key);
      if (d.listing) {
        for (const ListEntry& e : d.listing->entries) keys.push_back(e.key);
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    for (const auto& [id, p] : pending_) keys.push_back(p.key);
  }
  return keys;
}

SessionStats Session::Stats() {
  SessionStats s;
  s.cache = cache_.Stats();
  s.requests = n_requests_.load();
  s.native = n_native_.load();
  s.to_js = n_js_.load();
  s.interrupts = n_interrupts_.load();
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    s.pending = pending_.size();
  }
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    s.open_dirs = dirs_.size();
  }
  s.proto_minor = proto_minor_;
  s.max_pages = options_.max_pages;
  s.flags = flags_;
  s.passthrough = passthrough_;
  s.pread_reads = n_pread_.load();
  s.pread_errors = n_pread_errors_.load();
  {
    std::lock_guard<std::mutex> lock(notify_mu_);
    s.notices = notices_.size() + (notify_busy_ ? 1 : 0);
  }
  return s;
}

}  // namespace strata_fuse
