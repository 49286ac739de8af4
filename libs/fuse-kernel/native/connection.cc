// A live connection: the reader threads (one cloned fd and epoll set each),
// the notifier's fd, and the end of it all (Stop, or the kernel's ENODEV).
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
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

// An eighth of the fds this process may open, 64..4096: pread registrations
// of every mount of the process share that limit with everything else.
static uint64_t PreadFiles(uint64_t asked) {
  if (asked > 0) return asked;
  rlimit r{};
  const uint64_t soft = getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY ? r.rlim_cur : 32768;
  return std::clamp<uint64_t>(soft / 8, 64, 4096);
}

Session::Session(const MountOptions& options, Bridge* bridge)
    : options_(options), bridge_(bridge), cache_(options.root_key, options.cache_limit, PreadFiles(options.pread_files)) {
  next_fh_.store(1 + (static_cast<uint64_t>(options.generation) << 40));
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
    int notify_fd = -1;
    int clone = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    uint32_t master = static_cast<uint32_t>(master_fd_);
    if (clone >= 0 && ioctl(clone, FUSE_DEV_IOC_CLONE, &master) == 0) {
      notify_fd = clone;
    } else {
      if (clone >= 0) close(clone);
      notify_fd = fcntl(master_fd_, F_DUPFD_CLOEXEC, 0);
    }
    if (notify_fd >= 0) {
      notifier_.Start(notify_fd, [this](uint64_t token, int error) {
        if (stopping_.load()) return;  // Stop() settles what JavaScript waits for
        Event ev;
        ev.kind = Event::kNotified;
        ev.keys = {token, static_cast<uint64_t>(error)};
        bridge_->Post(std::move(ev));
      });
    }
  }
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
  StartDeadlines();
}

Session::~Session() {
  Stop();
  if (release_thread_.joinable()) release_thread_.join();
}

void Session::Stop() {
  if (released_) {
    // The bridge is let go right after this returns (the JavaScript side is
    // closing or the process exiting): the release thread must not post to it.
    std::lock_guard<std::mutex> lock(release_mu_);
    bridge_gone_ = true;
    return;
  }
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
  }
  notifier_.Stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  StopDeadlines();
  {
    // What still waits in JavaScript is answered as the kernel's abort would
    // answer it; a notice the kernel holds may be waiting for one of these.
    std::lock_guard<std::mutex> lock(pending_mu_);
    for (const auto& [id, p] : pending_) Send(p.fd, p.unique, ECONNABORTED, nullptr, 0);
    pending_.clear();
    pending_by_unique_.clear();
  }
  DrainWhileNotifying();
  notifier_.Join();
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
  notifier_.Close();
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
