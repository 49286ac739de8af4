// strata-fd-holder: keeps FUSE connections' /dev/fuse fds open across agent restarts and
// crashes (issue 27), where systemd's fd store is not there (a Kubernetes DaemonSet).
//
//   strata-fd-holder --socket DIR/holder.sock [--idle-exit-ms 60000] [--daemon]
//
// --idle-exit-ms 0: never exit idle (a holder run as a container of its own beside the agent's).
//
// One per socket (a flock on SOCKET.lock; a second one exits 0 at once). No Node, no
// libraries: it must outlive agent upgrades. SIGTERM/SIGINT exit cleanly, closing every fd
// held, which ends the connections of mounts whose agent is not running: whatever supervises
// the agent must not signal the holder when it restarts the agent (setsid'd, its own process
// group; under systemd, KillMode=process or the fd store instead).
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include "log.h"
#include "server.h"

namespace {

struct Options {
  std::string socket;
  int64_t idle_exit_ms = 60000;
  bool daemon = false;
};

int Usage(const char* why) {
  holder::LogLine("holder.usage").Str("error", why).Str("usage", "strata-fd-holder --socket PATH [--idle-exit-ms N] [--daemon]");
  return 2;
}

bool Parse(int argc, char** argv, Options* o, const char** why) {
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--daemon") {
      o->daemon = true;
    } else if ((a == "--socket" || a == "--idle-exit-ms") && i + 1 < argc) {
      std::string v = argv[++i];
      if (a == "--socket") {
        o->socket = v;
      } else {
        char* end = nullptr;
        long long n = std::strtoll(v.c_str(), &end, 10);
        if (end == v.c_str() || *end != '\0' || n < 0 || n > 7LL * 24 * 3600 * 1000) {
          *why = "--idle-exit-ms wants milliseconds";
          return false;
        }
        o->idle_exit_ms = n;
      }
    } else {
      *why = "unknown argument";
      return false;
    }
  }
  struct sockaddr_un addr {};
  if (o->socket.empty() || o->socket[0] != '/' || o->socket.size() >= sizeof(addr.sun_path)) {
    *why = "--socket wants an absolute path shorter than 108 bytes";
    return false;
  }
  return true;
}

int Listen(const std::string& path) {
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  // Under the lock a socket file left there is a dead holder's.
  unlink(path.c_str());
  mode_t old = umask(0177);
  int rc = bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc != 0 || listen(fd, 16) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  // Started with 0, 1 or 2 closed, the first socket or received fd would take that number and
  // log lines would be written into it: hold them with /dev/null first.
  for (;;) {
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0) return 1;
    if (fd > STDERR_FILENO) {
      close(fd);
      break;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  Options o;
  const char* why = "";
  if (!Parse(argc, argv, &o, &why)) return Usage(why);

  std::string lock_path = o.socket + ".lock";
  int lock = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) {
    holder::LogLine("holder.exit").Str("why", "cannot open the lock file").Str("path", lock_path).Str("error", std::strerror(errno));
    return 1;
  }
  if (flock(lock, LOCK_EX | LOCK_NB) != 0) {
    // Another holder serves this socket: not an error, the caller just connects to it.
    holder::LogLine("holder.already_running").Str("socket", o.socket);
    return 0;
  }

  // Connections held are fds: as many as the hard limit allows (kMaxTotalFds bounds the use).
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  int ready_pipe[2] = {-1, -1};
  if (o.daemon) {
    if (pipe2(ready_pipe, O_CLOEXEC) != 0) return 1;
    pid_t child = fork();
    if (child < 0) return 1;
    if (child > 0) {
      // The parent returns once the daemon listens (or failed), so a caller can connect right after.
      close(ready_pipe[1]);
      struct pollfd p = {ready_pipe[0], POLLIN, 0};
      char ok = 0;
      if (poll(&p, 1, 10000) == 1 && read(ready_pipe[0], &ok, 1) == 1 && ok == 1) _exit(0);
      _exit(1);
    }
    close(ready_pipe[0]);
    setsid();
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
      dup2(devnull, STDIN_FILENO);
      dup2(devnull, STDOUT_FILENO);
      close(devnull);
    }
    if (chdir("/") != 0) return 1;
  }

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  int listen_fd = Listen(o.socket);
  if (sfd < 0 || listen_fd < 0) {
    holder::LogLine("holder.exit").Str("why", "cannot listen").Str("socket", o.socket).Str("error", std::strerror(errno));
    return 1;
  }
  struct stat bound {};
  stat(o.socket.c_str(), &bound);
  holder::LogLine("holder.start").Str("socket", o.socket).Num("idleExitMs", o.idle_exit_ms);
  if (ready_pipe[1] >= 0) {
    char ok = 1;
    if (write(ready_pipe[1], &ok, 1) != 1) return 1;
    close(ready_pipe[1]);
  }

  int status;
  {
    holder::Server server(listen_fd, sfd, o.idle_exit_ms);
    status = server.Run();
  }
  // Only our own socket file: not one a later holder bound (it could not, holding no lock, but be sure).
  struct stat now {};
  if (stat(o.socket.c_str(), &now) == 0 && now.st_ino == bound.st_ino && now.st_dev == bound.st_dev) unlink(o.socket.c_str());
  close(listen_fd);
  close(sfd);
  return status;
}
