#include "packet-io.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "protocol.h"

namespace holder {

void CloseAll(std::vector<int>* fds) {
  for (int fd : *fds) close(fd);
  fds->clear();
}

RecvResult RecvPacket(int sock, std::string* buf, std::vector<int>* fds, size_t maxFds) {
  buf->resize(kMaxMessage + 1);
  // Room for the kernel's own limit (SCM_MAX_FD, 253) so that nothing is silently cut: whatever
  // came is closed when it is more than maxFds.
  alignas(struct cmsghdr) char control[CMSG_SPACE(253 * sizeof(int))];
  struct iovec iov = {&(*buf)[0], buf->size()};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? RecvResult::kAgain : RecvResult::kError;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds->push_back(fd);
    }
  }
  if (n == 0 && fds->empty()) return RecvResult::kClosed;
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || static_cast<size_t>(n) > kMaxMessage || fds->size() > maxFds) {
    CloseAll(fds);
    return RecvResult::kError;
  }
  buf->resize(static_cast<size_t>(n));
  return RecvResult::kMessage;
}

static int64_t NowMs() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool SendPacket(int sock, const std::string& bytes, const std::vector<int>& fds, int timeoutMs) {
  if (fds.size() > kMaxFdsPerEntry) return false;
  alignas(struct cmsghdr) char control[CMSG_SPACE(kMaxFdsPerEntry * sizeof(int))];
  struct iovec iov = {const_cast<char*>(bytes.data()), bytes.size()};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  int64_t deadline = NowMs() + timeoutMs;
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n) == bytes.size();
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    int64_t left = deadline - NowMs();
    if (left <= 0) return false;
    struct pollfd p = {sock, POLLOUT, 0};
    poll(&p, 1, static_cast<int>(left));
  }
}

}  // namespace holder
