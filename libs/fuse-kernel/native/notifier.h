// Invalidation notices (FUSE_NOTIFY_INVAL_*), written in order by one thread
// on a /dev/fuse fd of its own. The kernel handles a notice inside write(2)
// and may wait there for a lock that a request waiting in JavaScript holds,
// so no reader and never the JavaScript thread writes one.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace strata_fuse {

class Notifier {
 public:
  // Called on the notifier's thread after each write: the notice's token and
  // the write's errno (0: the kernel took it).
  using Written = std::function<void(uint64_t token, int error)>;

  Notifier() = default;
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Takes fd and starts the thread.
  void Start(int fd, Written written);
  // Queues a notice: its token (> 0), or -ENOTCONN once stopped or never started.
  int64_t Queue(int code, std::string payload);
  // No more notices: those queued are dropped; the thread ends once a write
  // in the kernel (if any) returns.
  void Stop();
  // A write is inside the kernel now.
  bool busy();
  void Join();
  void Close();  // after Join
  int fd() const { return fd_; }
  // Notices queued or inside the kernel.
  uint64_t outstanding();

 private:
  struct Notice {
    uint64_t token;
    int code;
    std::string payload;
  };
  void Loop();

  Written written_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Notice> notices_;
  bool stop_ = false;
  bool busy_ = false;
  uint64_t next_token_ = 1;
  int fd_ = -1;
  std::thread thread_;
};

}  // namespace strata_fuse
