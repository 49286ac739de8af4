// The Notifier (notifier.h), and the session's invalidations that queue
// notices on it: InvalidateInode/Entry drop the native cache's items at once;
// the kernel's part is written later by the notifier's thread.
#include "notifier.h"

#include <errno.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "protocol.h"
#include "session.h"

namespace strata_fuse {

Notifier::~Notifier() {
  Stop();
  Join();
  Close();
}

void Notifier::Start(int fd, Written written) {
  fd_ = fd;
  written_ = std::move(written);
  thread_ = std::thread(&Notifier::Loop, this);
}

void Notifier::Loop() {
  for (;;) {
    Notice n;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !notices_.empty(); });
      if (stop_) return;
      n = std::move(notices_.front());
      notices_.pop_front();
      busy_ = true;
    }
    fuse_out_header out{};
    out.len = static_cast<uint32_t>(sizeof(out) + n.payload.size());
    out.error = n.code;
    out.unique = 0;
    struct iovec v[2] = {{&out, sizeof(out)}, {n.payload.data(), n.payload.size()}};
    ssize_t w;
    do {
      w = writev(fd_, v, 2);
    } while (w < 0 && errno == EINTR);
    int e = w < 0 ? errno : 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = false;
    }
    written_(n.token, e);
  }
}

int64_t Notifier::Queue(int code, std::string payload) {
  uint64_t token;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ || fd_ < 0) return -ENOTCONN;
    token = next_token_++;
    notices_.push_back(Notice{token, code, std::move(payload)});
  }
  cv_.notify_one();
  return static_cast<int64_t>(token);
}

void Notifier::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    notices_.clear();  // JavaScript settles what it still waits for when the session ends
  }
  cv_.notify_all();
}

bool Notifier::busy() {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_;
}

void Notifier::Join() {
  if (thread_.joinable()) thread_.join();
}

void Notifier::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

uint64_t Notifier::outstanding() {
  std::lock_guard<std::mutex> lock(mu_);
  return notices_.size() + (busy_ ? 1 : 0);
}

int64_t Session::Notify(int code, std::string payload) {
  if (ended_.load()) return -ENOTCONN;
  return notifier_.Queue(code, std::move(payload));
}

// Stop() with a notice still in the kernel: the write may wait for a request
// nobody reads any more (a READ holding a page lock, a LOOKUP holding the
// directory). Read and refuse whatever arrives on the notifier's device until
// the write returns.
void Session::DrainWhileNotifying() {
  const int fd = notifier_.fd();
  if (fd < 0) return;
  std::unique_ptr<char[]> buf;
  for (;;) {
    if (!notifier_.busy()) return;
    if (!buf) buf.reset(new char[bufsize_]);
    pollfd pfd{fd, POLLIN, 0};
    poll(&pfd, 1, 10);
    ssize_t n = read(fd, buf.get(), bufsize_);
    if (n < 0) {
      if (errno == ENODEV) return;  // aborted: the write fails out by itself
      continue;
    }
    if (static_cast<size_t>(n) < sizeof(fuse_in_header)) continue;
    fuse_in_header h;
    std::memcpy(&h, buf.get(), sizeof(h));
    if (OpcodeOf(h.opcode).reply) Send(fd, h.unique, ECONNABORTED, nullptr, 0);
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

}  // namespace strata_fuse
