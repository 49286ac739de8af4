// Passing file descriptors over unix sockets (SCM_RIGHTS): to the fd holder and to systemd's
// store. Node has neither SOCK_SEQPACKET nor fd passing, so the socket lives here: JavaScript
// holds its number and calls these, every wait bounded by a timeout.
//
//   unixConnect(path, timeoutMs) → fd                        SOCK_SEQPACKET, close-on-exec
//   unixBindDgram(path) → fd                                 a datagram socket bound at path (tests: a fake NOTIFY_SOCKET)
//   unixSend(fd, bytes, fds, timeoutMs)                      one packet with its fds
//   unixRecv(fd, maxBytes, maxFds, timeoutMs) → Promise<{bytes, fds} | null>   null: the peer closed
//   closeFd(fd)
//   setCloexec(fd)                                           fds inherited from systemd (LISTEN_FDS) are not close-on-exec
//   heartbeatStart(fd, bytes, intervalMs) → handle           a native thread sends bytes every intervalMs
//   heartbeatStop(handle)
//
// Errors are Error objects with `errno` (ETIMEDOUT when a wait ran out).
#include <fcntl.h>
#include <napi.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace strata_fuse {

namespace {

constexpr size_t kMaxPacket = 1 << 20;
constexpr size_t kMaxFds = 253;  // SCM_MAX_FD
constexpr int kMaxWaitMs = 10 * 60 * 1000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Napi::Value ThrowErrno(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

bool Address(const std::string& path, struct sockaddr_un* addr, socklen_t* len) {
  *addr = {};
  addr->sun_family = AF_UNIX;
  bool abstract = !path.empty() && path[0] == '@';
  if (path.empty() || path.size() >= sizeof(addr->sun_path) || (path[0] != '/' && !abstract)) return false;
  std::memcpy(addr->sun_path, path.data(), path.size());
  if (abstract) addr->sun_path[0] = '\0';
  *len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  return true;
}

int ClampWait(const Napi::Value& v) {
  if (!v.IsNumber()) return 0;
  double ms = v.As<Napi::Number>().DoubleValue();
  if (!(ms > 0)) return 0;
  return ms > kMaxWaitMs ? kMaxWaitMs : static_cast<int>(ms);
}

// Waits for events on fd until deadline: 0, ETIMEDOUT, or poll's errno.
int WaitFor(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left < 0) left = 0;
    struct pollfd p = {fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return (p.revents & POLLNVAL) != 0 ? EBADF : 0;
    if (n == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

bool FdList(const Napi::Value& v, std::vector<int>* fds) {
  if (v.IsUndefined() || v.IsNull()) return true;
  if (!v.IsArray()) return false;
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > kMaxFds) return false;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber()) return false;
    int fd = x.As<Napi::Number>().Int32Value();
    if (fd < 0) return false;
    fds->push_back(fd);
  }
  return true;
}

}  // namespace

// One sendmsg: bytes and fds (SCM_RIGHTS) to sock, or to `to` when given. 0 or an errno;
// EAGAIN when the socket had no room. Shared with sd-notify.cc (FDSTORE).
int SendWithFds(int sock, const struct sockaddr* to, socklen_t toLength, const void* bytes, size_t length,
                const int* fds, size_t count) {
  if (count > kMaxFds) return EINVAL;
  std::vector<char> control(count == 0 ? 0 : CMSG_SPACE(count * sizeof(int)));
  struct iovec iov = {const_cast<void*>(bytes), length};
  struct msghdr msg {};
  msg.msg_name = const_cast<struct sockaddr*>(to);
  msg.msg_namelen = to == nullptr ? 0 : toLength;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (count > 0) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(count * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, count * sizeof(int));
  }
  ssize_t n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) return errno;
  return static_cast<size_t>(n) == length ? 0 : EMSGSIZE;
}

namespace {

Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "unixConnect(path, timeoutMs)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr;
  socklen_t len;
  if (!Address(path, &addr, &len)) return ThrowErrno(env, EINVAL, path + ": not an absolute path or @abstract, or too long");
  int64_t deadline = NowMs() + ClampWait(info[1]);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  for (;;) {
    if (connect(fd, reinterpret_cast<struct sockaddr*>(&addr), len) == 0) break;
    int err = errno;
    // EAGAIN: the listener's backlog is full (a unix connect does not proceed by itself): retry until the deadline.
    if ((err == EAGAIN || err == EINTR) && NowMs() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    close(fd);
    return ThrowErrno(env, err == EAGAIN ? ETIMEDOUT : err, "connect " + path);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value UnixBindDgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "unixBindDgram(path)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr;
  socklen_t len;
  if (!Address(path, &addr, &len)) return ThrowErrno(env, EINVAL, path + ": not an absolute path or @abstract, or too long");
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), len) != 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "bind " + path);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value UnixSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<int> fds;
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer() || !FdList(info[2], &fds)) {
    Napi::TypeError::New(env, "unixSend(fd, bytes, fds[], timeoutMs)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int sock = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> bytes = info[1].As<Napi::Buffer<uint8_t>>();
  if (bytes.Length() > kMaxPacket) return ThrowErrno(env, EMSGSIZE, "unixSend");
  int64_t deadline = NowMs() + ClampWait(info[3]);
  for (;;) {
    int err = SendWithFds(sock, nullptr, 0, bytes.Data(), bytes.Length(), fds.data(), fds.size());
    if (err == 0) return env.Undefined();
    if (err != EAGAIN && err != EINTR) return ThrowErrno(env, err, "sendmsg");
    err = WaitFor(sock, POLLOUT, deadline);
    if (err != 0) return ThrowErrno(env, err, "sendmsg");
  }
}

// Receives one packet on a worker thread: the JS thread never waits on the peer.
class RecvWorker : public Napi::AsyncWorker {
 public:
  RecvWorker(Napi::Env env, int sock, size_t maxBytes, size_t maxFds, int timeoutMs)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), sock_(sock), max_bytes_(maxBytes),
        max_fds_(maxFds), timeout_ms_(timeoutMs) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int64_t deadline = NowMs() + timeout_ms_;
    bytes_.resize(max_bytes_ + 1);
    std::vector<char> control(CMSG_SPACE(kMaxFds * sizeof(int)));
    for (;;) {
      struct iovec iov = {bytes_.data(), bytes_.size()};
      struct msghdr msg {};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      ssize_t n = recvmsg(sock_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          err_ = errno;
          return;
        }
        int w = WaitFor(sock_, POLLIN, deadline);
        if (w != 0) {
          err_ = w;
          return;
        }
        continue;
      }
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          fds_.push_back(fd);
        }
      }
      bool truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || static_cast<size_t>(n) > max_bytes_;
      if (truncated || fds_.size() > max_fds_) {
        // What came with a packet we refuse is closed here: nothing leaks into the process unowned.
        for (int fd : fds_) close(fd);
        fds_.clear();
        err_ = EMSGSIZE;
        return;
      }
      closed_ = n == 0 && fds_.empty();
      bytes_.resize(static_cast<size_t>(n));
      return;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      Napi::Error e = Napi::Error::New(env, std::string("recvmsg: ") + std::strerror(err_));
      e.Set("errno", Napi::Number::New(env, err_));
      deferred_.Reject(e.Value());
      return;
    }
    if (closed_) {
      deferred_.Resolve(env.Null());
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()));
    Napi::Array fds = Napi::Array::New(env, fds_.size());
    for (size_t i = 0; i < fds_.size(); i++) fds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds_[i]));
    o.Set("fds", fds);
    deferred_.Resolve(o);
  }

 private:
  Napi::Promise::Deferred deferred_;
  int sock_;
  size_t max_bytes_;
  size_t max_fds_;
  int timeout_ms_;
  std::vector<char> bytes_;
  std::vector<int> fds_;
  bool closed_ = false;
  int err_ = 0;
};

Napi::Value UnixRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "unixRecv(fd, maxBytes, maxFds, timeoutMs)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int sock = info[0].As<Napi::Number>().Int32Value();
  double max_bytes = info[1].As<Napi::Number>().DoubleValue();
  double max_fds = info[2].As<Napi::Number>().DoubleValue();
  if (!(max_bytes >= 0 && max_bytes <= kMaxPacket) || !(max_fds >= 0 && max_fds <= kMaxFds)) {
    return ThrowErrno(env, EINVAL, "unixRecv: maxBytes ≤ 1 MiB, maxFds ≤ 253");
  }
  auto* worker = new RecvWorker(env, sock, static_cast<size_t>(max_bytes), static_cast<size_t>(max_fds), ClampWait(info[3]));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "closeFd(fd)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0 || close(fd) != 0) return ThrowErrno(env, fd < 0 ? EBADF : errno, "close");
  return env.Undefined();
}

Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "setCloexec(fd)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  int flags = fd < 0 ? -1 : fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) return ThrowErrno(env, fd < 0 ? EBADF : errno, "fcntl(FD_CLOEXEC)");
  return env.Undefined();
}

// Heartbeats come from a thread of their own: a JavaScript thread that is merely busy (a long
// synchronous task, a GC pause) keeps them going; only a stopped or dead process stops them.
struct Heartbeat {
  int fd = -1;  // a dup: JavaScript may close its socket while the thread still runs
  std::string bytes;
  int interval_ms = 0;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;
};

std::mutex heartbeats_mu;
std::map<uint32_t, std::unique_ptr<Heartbeat>> heartbeats;
uint32_t next_heartbeat = 1;

void RunHeartbeat(Heartbeat* h) {
  std::unique_lock<std::mutex> lock(h->mu);
  while (!h->stop) {
    // Best effort: a full socket (the holder stopped reading) or a gone holder is the holder's
    // problem to notice; the next beat tries again.
    SendWithFds(h->fd, nullptr, 0, h->bytes.data(), h->bytes.size(), nullptr, 0);
    h->cv.wait_for(lock, std::chrono::milliseconds(h->interval_ms), [h] { return h->stop; });
  }
}

void StopHeartbeat(std::unique_ptr<Heartbeat> h) {
  {
    std::lock_guard<std::mutex> lock(h->mu);
    h->stop = true;
  }
  h->cv.notify_all();
  if (h->thread.joinable()) h->thread.join();
  close(h->fd);
}

Napi::Value HeartbeatStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsBuffer() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "heartbeatStart(fd, bytes, intervalMs)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int interval = ClampWait(info[2]);
  Napi::Buffer<uint8_t> bytes = info[1].As<Napi::Buffer<uint8_t>>();
  if (interval < 10 || bytes.Length() > kMaxPacket) return ThrowErrno(env, EINVAL, "heartbeatStart: intervalMs ≥ 10");
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return ThrowErrno(env, errno, "heartbeatStart: dup");
  auto h = std::make_unique<Heartbeat>();
  h->fd = fd;
  h->bytes.assign(reinterpret_cast<const char*>(bytes.Data()), bytes.Length());
  h->interval_ms = interval;
  h->thread = std::thread(RunHeartbeat, h.get());
  std::lock_guard<std::mutex> lock(heartbeats_mu);
  uint32_t handle = next_heartbeat++;
  heartbeats.emplace(handle, std::move(h));
  return Napi::Number::New(env, handle);
}

Napi::Value HeartbeatStop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "heartbeatStop(handle)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::unique_ptr<Heartbeat> h;
  {
    std::lock_guard<std::mutex> lock(heartbeats_mu);
    auto it = heartbeats.find(info[0].As<Napi::Number>().Uint32Value());
    if (it == heartbeats.end()) return Napi::Boolean::New(env, false);
    h = std::move(it->second);
    heartbeats.erase(it);
  }
  StopHeartbeat(std::move(h));
  return Napi::Boolean::New(env, true);
}

// At the environment's end no thread may outlive the module that runs it.
void StopAllHeartbeats(void*) {
  std::map<uint32_t, std::unique_ptr<Heartbeat>> all;
  {
    std::lock_guard<std::mutex> lock(heartbeats_mu);
    all.swap(heartbeats);
  }
  for (auto& [handle, h] : all) StopHeartbeat(std::move(h));
}

}  // namespace

void RegisterFdPassing(Napi::Env env, Napi::Object exports) {
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect));
  exports.Set("unixBindDgram", Napi::Function::New(env, UnixBindDgram));
  exports.Set("unixSend", Napi::Function::New(env, UnixSend));
  exports.Set("unixRecv", Napi::Function::New(env, UnixRecv));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexec));
  exports.Set("heartbeatStart", Napi::Function::New(env, HeartbeatStart));
  exports.Set("heartbeatStop", Napi::Function::New(env, HeartbeatStop));
  napi_add_env_cleanup_hook(env, StopAllHeartbeats, nullptr);
}

}  // namespace strata_fuse
