// Invalidation notices, written by one thread on its own cloned fd: the kernel
// may wait inside the write for a lock that a request waiting in JavaScript holds.
#include "session.h"

#include <errno.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

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
    if (OpcodeOf(h.opcode).reply) Send(notify_fd_, h.unique, ECONNABORTED, nullptr, 0);
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
