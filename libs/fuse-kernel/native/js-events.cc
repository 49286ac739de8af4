// An event of the session as JavaScript receives it (src/native.ts NativeEvent).
#include "js-events.h"

#include "opcodes.h"

namespace strata_fuse {

Napi::Object EventToJs(Napi::Env env, const Event& ev) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", Napi::Number::New(env, ev.kind));
  switch (ev.kind) {
    case Event::kRequest: {
      const Pending& p = ev.request;
      o.Set("id", Napi::Number::New(env, static_cast<double>(p.id)));
      o.Set("op", Napi::Number::New(env, p.opcode));
      o.Set("ino", Napi::BigInt::New(env, p.key));
      if (OpcodeOf(p.opcode).has_name) {
        o.Set("name", Napi::Buffer<char>::Copy(env, p.name.data(), p.name.size()));
      }
      o.Set("fh", Napi::BigInt::New(env, p.fh));
      o.Set("offset", Napi::BigInt::New(env, p.offset));
      o.Set("size", Napi::Number::New(env, p.size));
      o.Set("uid", Napi::Number::New(env, p.uid));
      o.Set("gid", Napi::Number::New(env, p.gid));
      o.Set("pid", Napi::Number::New(env, p.pid));
      break;
    }
    case Event::kForget: {
      Napi::Array keys = Napi::Array::New(env, ev.keys.size());
      for (uint32_t k = 0; k < ev.keys.size(); k++) keys.Set(k, Napi::BigInt::New(env, ev.keys[k]));
      o.Set("inos", keys);
      break;
    }
    case Event::kRelease:
      o.Set("ino", Napi::BigInt::New(env, ev.keys.size() > 0 ? ev.keys[0] : 0));
      o.Set("fh", Napi::BigInt::New(env, ev.keys.size() > 1 ? ev.keys[1] : 0));
      break;
    case Event::kOpen: {
      auto at = [&ev](size_t k) { return ev.keys.size() > k ? ev.keys[k] : 0; };
      o.Set("ino", Napi::BigInt::New(env, at(0)));
      o.Set("fh", Napi::BigInt::New(env, at(1)));
      o.Set("uid", Napi::Number::New(env, static_cast<double>(at(2))));
      o.Set("gid", Napi::Number::New(env, static_cast<double>(at(3))));
      o.Set("pid", Napi::Number::New(env, static_cast<double>(at(4))));
      break;
    }
    case Event::kEnd:
      o.Set("reason", Napi::String::New(env, ev.reason));
      break;
    case Event::kNotified:
      o.Set("token", Napi::Number::New(env, static_cast<double>(ev.keys.size() > 0 ? ev.keys[0] : 0)));
      o.Set("errno", Napi::Number::New(env, static_cast<double>(ev.keys.size() > 1 ? ev.keys[1] : 0)));
      break;
  }
  return o;
}

}  // namespace strata_fuse
