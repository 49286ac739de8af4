// The holder's event loop: the listening socket, its clients, the held entries and the watchdog.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "protocol.h"
#include "registry.h"
#include "watchdog.h"

namespace holder {

struct Client {
  int fd = -1;
  pid_t pid = 0;
  uid_t uid = 0;
  bool agent = false;  // sent a heartbeat
  bool bye = false;
};

class Server {
 public:
  Server(int listenFd, int signalFd, int64_t idleExitMs);
  ~Server();
  // Runs until SIGTERM/SIGINT or idle exit; returns the exit status.
  int Run();

 private:
  void Accept();
  // False when the client is to be disconnected.
  bool Handle(Client* c);
  bool Dispatch(Client* c, const Message& m, std::vector<int>* fds);
  bool Reply(Client* c, uint8_t type, uint32_t value, const std::string& meta);
  void Disconnect(size_t index);
  void CheckConnections();
  std::string Status() const;

  int listen_fd_;
  int signal_fd_;
  int64_t idle_exit_ms_;
  std::vector<Client> clients_;
  Registry registry_;
  Watchdog watchdog_;
  uint32_t timeout_ms_ = 0;  // from heartbeats; 0: no watchdog
  int64_t last_heartbeat_ms_ = 0;
  int64_t idle_since_ms_ = 0;
  int64_t last_check_ms_ = 0;
  std::string buffer_;
};

int64_t MonotonicMs();

}  // namespace holder
