#include "server.h"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>

#include "log.h"
#include "packet-io.h"

namespace holder {

constexpr int kSendTimeoutMs = 2000;
// How often held connections are checked for their end (POLLERR): not by waiting in poll(2) on
// them, which would wake the holder for every request the agent serves.
constexpr int64_t kCheckEveryMs = 1000;

int64_t MonotonicMs() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Server::Server(int listenFd, int signalFd, int64_t idleExitMs)
    : listen_fd_(listenFd), signal_fd_(signalFd), idle_exit_ms_(idleExitMs) {
  idle_since_ms_ = MonotonicMs();
}

Server::~Server() {
  for (Client& c : clients_) close(c.fd);
}

void Server::Accept() {
  int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || (cred.uid != 0 && cred.uid != geteuid())) {
    // The fds held here are mounts' connections: only their owner (or root) may see them.
    LogLine("client.refused").Num("peerPid", cred.pid).Num("uid", cred.uid);
    close(fd);
    return;
  }
  if (clients_.size() >= kMaxClients) {
    LogLine("client.refused").Num("peerPid", cred.pid).Str("why", "too many clients");
    close(fd);
    return;
  }
  Client c;
  c.fd = fd;
  c.pid = cred.pid;
  c.uid = cred.uid;
  clients_.push_back(c);
  LogLine("client.connect").Num("peerPid", cred.pid).Num("uid", cred.uid);
}

void Server::Disconnect(size_t index) {
  Client c = clients_[index];
  close(c.fd);
  clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(index));
  LogLine("client.disconnect").Num("peerPid", c.pid).Bool("agent", c.agent).Bool("bye", c.bye);
  if (clients_.empty()) idle_since_ms_ = MonotonicMs();
}

bool Server::Reply(Client* c, uint8_t type, uint32_t value, const std::string& meta) {
  return SendPacket(c->fd, Encode(type, 0, value, "", meta), {}, kSendTimeoutMs);
}

std::string Server::Status() const {
  int64_t silent = timeout_ms_ == 0 ? 0 : MonotonicMs() - last_heartbeat_ms_;
  size_t agents = 0;
  for (const Client& c : clients_) agents += c.agent ? 1 : 0;
  return "{\"pid\":" + std::to_string(getpid()) + ",\"entries\":" + std::to_string(registry_.entries().size()) +
         ",\"fds\":" + std::to_string(registry_.total_fds()) + ",\"clients\":" + std::to_string(clients_.size()) +
         ",\"agents\":" + std::to_string(agents) + ",\"timeoutMs\":" + std::to_string(timeout_ms_) +
         ",\"silentMs\":" + std::to_string(silent) + ",\"watchdog\":" + (watchdog_.active() ? "true" : "false") + "}";
}

bool Server::Dispatch(Client* c, const Message& m, std::vector<int>* fds) {
  if (m.type != kPut) CloseAll(fds);  // fds only ever come with a PUT
  switch (m.type) {
    case kPut: {
      int err = registry_.Put(m.id, m.meta, (m.flags & kFlagHard) != 0, fds);
      if (err != 0) return Reply(c, kErr, static_cast<uint32_t>(err), err == EINVAL ? "a put needs an id and 1..64 fds" : std::strerror(err));
      watchdog_.Sync(&registry_);
      return Reply(c, kOk, 0, "");
    }
    case kList: {
      uint32_t count = 0;
      for (auto& [id, e] : registry_.entries()) {
        if (!SendPacket(c->fd, Encode(kEntry, e.hard ? kFlagHard : 0, 0, e.id, e.meta), e.fds, kSendTimeoutMs)) return false;
        count++;
      }
      return SendPacket(c->fd, Encode(kEnd, 0, count, "", ""), {}, kSendTimeoutMs);
    }
    case kDrop:
      return Reply(c, kOk, registry_.Drop(m.id, "dropped") ? 1 : 0, "");
    case kHeartbeat: {
      uint32_t timeout = std::min(m.value, kMaxTimeoutMs);
      if (!c->agent || timeout != timeout_ms_) LogLine("agent.heartbeat").Num("peerPid", c->pid).Num("timeoutMs", timeout);
      c->agent = true;
      timeout_ms_ = timeout;
      last_heartbeat_ms_ = MonotonicMs();
      watchdog_.Stop(&registry_, timeout == 0 ? "disarmed" : "heartbeat");
      return true;  // no answer: a heartbeat thread only ever sends
    }
    case kBye:
      c->bye = true;
      LogLine("agent.bye").Num("peerPid", c->pid);
      return Reply(c, kOk, 0, "");
    case kStatus:
      return Reply(c, kOk, 0, Status());
    default:
      return Reply(c, kErr, EINVAL, "unknown message type");
  }
}

bool Server::Handle(Client* c) {
  // A few packets per wakeup: one client never starves the others or the watchdog.
  for (int i = 0; i < 16; i++) {
    std::vector<int> fds;
    RecvResult r = RecvPacket(c->fd, &buffer_, &fds, kMaxFdsPerEntry);
    if (r == RecvResult::kAgain) return true;
    if (r == RecvResult::kClosed) return false;
    if (r == RecvResult::kError) {
      LogLine("client.bad_message").Num("peerPid", c->pid).Str("why", "truncated, oversized or too many fds");
      return false;
    }
    Message m;
    const char* why = "";
    if (!Decode(reinterpret_cast<const uint8_t*>(buffer_.data()), buffer_.size(), &m, &why)) {
      CloseAll(&fds);
      LogLine("client.bad_message").Num("peerPid", c->pid).Str("why", why);
      return false;
    }
    if (!Dispatch(c, m, &fds)) return false;
  }
  return true;
}

void Server::CheckConnections() {
  std::vector<std::string> gone;
  for (auto& [id, e] : registry_.entries()) {
    if (!e.fuse) continue;
    struct pollfd p = {e.fds[0], 0, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLNVAL)) != 0) gone.push_back(id);
  }
  for (const std::string& id : gone) registry_.Drop(id, "connection ended");
}

int Server::Run() {
  for (;;) {
    int64_t now = MonotonicMs();
    if (timeout_ms_ > 0 && !watchdog_.active() && now - last_heartbeat_ms_ >= timeout_ms_) {
      bool agent = std::any_of(clients_.begin(), clients_.end(), [](const Client& c) { return c.agent; });
      watchdog_.Start(&registry_, agent ? "stopped" : "absent", now - last_heartbeat_ms_);
    }
    if (now - last_check_ms_ >= kCheckEveryMs) {
      last_check_ms_ = now;
      CheckConnections();
      watchdog_.Sync(&registry_);
    }
    bool idle = idle_exit_ms_ > 0 && registry_.entries().empty() && clients_.empty();
    if (idle && now - idle_since_ms_ >= idle_exit_ms_) {
      LogLine("holder.exit").Str("why", "idle").Num("idleMs", now - idle_since_ms_);
      return 0;
    }
    int64_t wait = kCheckEveryMs;
    if (timeout_ms_ > 0 && !watchdog_.active()) wait = std::min<int64_t>(wait, last_heartbeat_ms_ + timeout_ms_ - now);
    if (idle) wait = std::min<int64_t>(wait, idle_since_ms_ + idle_exit_ms_ - now);
    wait = std::max<int64_t>(wait, 1);

    std::vector<struct pollfd> fds;
    fds.push_back({signal_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const Client& c : clients_) fds.push_back({c.fd, POLLIN, 0});
    std::vector<std::string> watched;
    for (auto& [id, e] : registry_.entries()) {
      if (e.watch_fd < 0) continue;
      fds.push_back({e.watch_fd, POLLIN, 0});
      watched.push_back(id);
    }
    int ready = poll(fds.data(), fds.size(), static_cast<int>(wait));
    if (ready < 0 && errno != EINTR) {
      LogLine("holder.exit").Str("why", "poll failed").Str("error", std::strerror(errno));
      return 1;
    }
    if (ready <= 0) continue;
    if (fds[0].revents != 0) {
      struct signalfd_siginfo si {};
      if (read(signal_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
          // Closing what it holds is what stopping the holder means: the connections of mounts
          // whose agent is not running end here.
          LogLine("holder.exit").Str("why", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT")
              .Num("entries", static_cast<int64_t>(registry_.entries().size()));
          return 0;
        }
      }
    }
    // Clients are handled from the last so a disconnect does not shift the ones still to do.
    size_t client_count = clients_.size();
    for (size_t i = client_count; i-- > 0;) {
      short ev = fds[2 + i].revents;
      if (ev == 0) continue;
      if (!Handle(&clients_[i]) || (ev & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
        // POLLHUP with data still queued: Handle read what it could first.
        Disconnect(i);
      }
    }
    for (size_t i = 0; i < watched.size(); i++) {
      if (fds[2 + client_count + i].revents == 0) continue;
      auto it = registry_.entries().find(watched[i]);
      if (it == registry_.entries().end()) continue;
      if (!watchdog_.Serve(&it->second)) registry_.Drop(watched[i], "connection ended");
    }
    if (fds[1].revents != 0) Accept();
  }
}

}  // namespace holder
