// sdNotify(socketPath, text): one datagram to the service manager's
// notification socket ($NOTIFY_SOCKET), as sd_notify(3) sends it. Node has no
// unix datagram sockets, and Type=notify units wait for "READY=1" from the
// main process itself (NotifyAccess=main), so a helper process will not do.
// sdNotify(socketPath, text, fds): the same with fds attached (SCM_RIGHTS), which is how
// "FDSTORE=1\nFDNAME=<name>" hands them to systemd's fd store.
#include <napi.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace strata_fuse {

// fd-passing.cc
int SendWithFds(int sock, const struct sockaddr* to, socklen_t toLength, const void* bytes, size_t length,
                const int* fds, size_t count);

Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "sdNotify(socketPath, text, fds?)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    Napi::Array a = info[2].As<Napi::Array>();
    // systemd takes at most SCM_MAX_FD (253) in one datagram.
    for (uint32_t i = 0; i < a.Length() && i < 253; i++) {
      Napi::Value v = a.Get(i);
      if (!v.IsNumber() || v.As<Napi::Number>().Int32Value() < 0) {
        Napi::TypeError::New(env, "sdNotify: fds must be fd numbers").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      fds.push_back(v.As<Napi::Number>().Int32Value());
    }
    if (a.Length() > 253) {
      Napi::Error e = Napi::Error::New(env, "sdNotify: more than 253 fds in one message");
      e.Set("errno", Napi::Number::New(env, EINVAL));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  std::string where = info[0].As<Napi::String>().Utf8Value();
  std::string text = info[1].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  // "@name" is the abstract namespace: a leading NUL, no terminating one.
  bool abstract = !where.empty() && where[0] == '@';
  if (where.empty() || where.size() >= sizeof(addr.sun_path) || (where[0] != '/' && !abstract)) {
    Napi::Error e = Napi::Error::New(env, "NOTIFY_SOCKET is neither an absolute path nor @abstract, or is too long");
    e.Set("errno", Napi::Number::New(env, EINVAL));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::memcpy(addr.sun_path, where.data(), where.size());
  if (abstract) addr.sun_path[0] = '\0';
  socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + where.size() + (abstract ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int err = 0;
  if (fd < 0) {
    err = errno;
  } else {
    err = SendWithFds(fd, reinterpret_cast<struct sockaddr*>(&addr), len, text.data(), text.size(), fds.data(), fds.size());
    close(fd);
  }
  if (err != 0) {
    Napi::Error e = Napi::Error::New(env, std::string("sd_notify: ") + std::strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return env.Undefined();
}

}  // namespace strata_fuse
