// peerCredentials(fd): who is at the other end of a connected unix socket,
// as the kernel recorded it at connect(2) (SO_PEERCRED). Node has no API for
// it, and the agent's control socket decides on it who may mount what.
#include <napi.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace strata_fuse {

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "peerCredentials(fd)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
    int err = errno != 0 ? errno : EINVAL;
    Napi::Error e = Napi::Error::New(env, std::string("getsockopt(SO_PEERCRED): ") + std::strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
  return o;
}

}  // namespace strata_fuse
