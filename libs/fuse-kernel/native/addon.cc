#include <napi.h>

// Placeholder so the package builds while the session is written.
static Napi::Value ProtocolVersion(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), 7);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("protocolVersion", Napi::Function::New(env, ProtocolVersion));
  return exports;
}

NODE_API_MODULE(fuse_kernel, Init)
