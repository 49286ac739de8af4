#include "watchdog.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "log.h"

namespace holder {

// Protocol 7.40; the uapi header here is 7.38.
constexpr int32_t kNotifyResend = 7;
// The kernel refuses a read buffer smaller than a whole WRITE (header + max_write): 1 MiB here
// (max_pages 256); a connection negotiated larger gets one retry with the larger buffer.
constexpr size_t kSmallBuffer = (1u << 20) + 64 * 1024;
constexpr size_t kLargeBuffer = (16u << 20) + 64 * 1024;
constexpr int kRequestsPerServe = 256;

static int64_t NowMs() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Watchdog::Watchdog() {}

Watchdog::~Watchdog() { std::free(buffer_); }

bool Watchdog::Attach(Entry* e) {
  int clone = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (clone < 0) {
    LogLine("watchdog.attach_failed").Str("id", e->id).Str("error", std::strerror(errno));
    e->watch_failed = true;
    return false;
  }
  uint32_t master = static_cast<uint32_t>(e->fds[0]);
  if (ioctl(clone, FUSE_DEV_IOC_CLONE, &master) != 0) {
    LogLine("watchdog.attach_failed").Str("id", e->id).Str("error", std::strerror(errno));
    close(clone);
    e->watch_failed = true;
    return false;
  }
  struct fuse_out_header notice {};
  notice.len = sizeof notice;
  notice.error = kNotifyResend;
  notice.unique = 0;
  if (write(clone, &notice, sizeof notice) != static_cast<ssize_t>(sizeof notice)) {
    // Without resend (kernel < 6.9) what the agent had read stays unanswered; the rest is still served.
    LogLine("watchdog.resend_failed").Str("id", e->id).Str("error", std::strerror(errno));
  }
  e->watch_fd = clone;
  return true;
}

void Watchdog::Start(Registry* registry, const char* why, int64_t silentMs) {
  if (active_) return;
  active_ = true;
  started_ms_ = NowMs();
  answered_ = 0;
  forgets_ = 0;
  size_t eligible = 0;
  for (auto& [id, e] : registry->entries()) eligible += (e.fuse && !e.hard) ? 1 : 0;
  LogLine("watchdog.start").Str("why", why).Num("silentMs", silentMs).Num("entries", static_cast<int64_t>(eligible));
  Sync(registry);
}

void Watchdog::Sync(Registry* registry) {
  if (!active_) return;
  for (auto& [id, e] : registry->entries()) {
    if (e.fuse && !e.hard && e.watch_fd < 0 && !e.watch_failed) Attach(&e);
  }
}

void Watchdog::Stop(Registry* registry, const char* why) {
  if (!active_) return;
  active_ = false;
  for (auto& [id, e] : registry->entries()) {
    if (e.watch_fd >= 0) close(e.watch_fd);
    e.watch_fd = -1;
    e.watch_failed = false;
  }
  LogLine("watchdog.stop").Str("why", why).Num("ms", NowMs() - started_ms_).Num("answered", static_cast<int64_t>(answered_))
      .Num("forgets", static_cast<int64_t>(forgets_));
  // The buffer is a megabyte: not kept while nobody needs answering.
  std::free(buffer_);
  buffer_ = nullptr;
  buffer_size_ = 0;
}

bool Watchdog::Serve(Entry* e) {
  if (e->watch_fd < 0) return true;
  if (buffer_ == nullptr) {
    buffer_ = static_cast<char*>(std::malloc(kSmallBuffer));
    if (buffer_ == nullptr) return true;
    buffer_size_ = kSmallBuffer;
  }
  for (int i = 0; i < kRequestsPerServe; i++) {
    ssize_t n = read(e->watch_fd, buffer_, buffer_size_);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      if (errno == EINVAL && buffer_size_ < kLargeBuffer) {
        char* bigger = static_cast<char*>(std::realloc(buffer_, kLargeBuffer));
        if (bigger == nullptr) return true;
        buffer_ = bigger;
        buffer_size_ = kLargeBuffer;
        continue;
      }
      if (errno == ENODEV || errno == ECONNABORTED) return false;  // unmounted or aborted
      LogLine("watchdog.read_failed").Str("id", e->id).Str("error", std::strerror(errno));
      close(e->watch_fd);
      e->watch_fd = -1;
      e->watch_failed = true;
      return true;
    }
    if (static_cast<size_t>(n) < sizeof(struct fuse_in_header)) continue;
    struct fuse_in_header in;
    std::memcpy(&in, buffer_, sizeof in);
    // No reply is expected (or accepted) for these.
    if (in.opcode == FUSE_FORGET || in.opcode == FUSE_BATCH_FORGET) {
      forgets_++;
      continue;
    }
    if (in.opcode == FUSE_INTERRUPT) continue;
    struct fuse_out_header out {};
    out.len = sizeof out;
    out.error = -EIO;
    out.unique = in.unique;
    // ENOENT: the request was interrupted and ended meanwhile; nothing to do.
    if (write(e->watch_fd, &out, sizeof out) == static_cast<ssize_t>(sizeof out)) {
      e->answered++;
      answered_++;
    }
  }
  return true;
}

}  // namespace holder
