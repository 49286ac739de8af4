// The N-API face of a Session: JavaScript constructs one per mount, receives
// the requests the native side cannot answer in batches through one
// thread-safe function, and answers them (or fills the cache) with the
// methods below. Attributes, statfs and listings arrive as Buffers packed by
// src/wire.ts (parsed in packed.cc); every length is checked before use.
#include <napi.h>
#include <node_api.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "js-events.h"
#include "packed.h"
#include "session.h"

namespace strata_fuse {

class SessionWrap : public Napi::ObjectWrap<SessionWrap>, public Bridge {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeSession",
                       {
                           InstanceMethod("replyError", &SessionWrap::ReplyError),
                           InstanceMethod("replyEntry", &SessionWrap::ReplyEntry),
                           InstanceMethod("replyNegative", &SessionWrap::ReplyNegative),
                           InstanceMethod("replyAttr", &SessionWrap::ReplyAttr),
                           InstanceMethod("replyListing", &SessionWrap::ReplyListing),
                           InstanceMethod("replyData", &SessionWrap::ReplyData),
                           InstanceMethod("liveKeys", &SessionWrap::LiveKeys),
                           InstanceMethod("replyLink", &SessionWrap::ReplyLink),
                           InstanceMethod("replyXattr", &SessionWrap::ReplyXattr),
                           InstanceMethod("replyStatfs", &SessionWrap::ReplyStatfs),
                           InstanceMethod("replyOpen", &SessionWrap::ReplyOpen),
                           InstanceMethod("cacheEntry", &SessionWrap::CacheEntry),
                           InstanceMethod("cacheNegative", &SessionWrap::CacheNegative),
                           InstanceMethod("cacheAttr", &SessionWrap::CacheAttr),
                           InstanceMethod("cacheListing", &SessionWrap::CacheListing),
                           InstanceMethod("cacheLink", &SessionWrap::CacheLink),
                           InstanceMethod("cacheXattrs", &SessionWrap::CacheXattrs),
                           InstanceMethod("cacheStatfs", &SessionWrap::CacheStatfs),
                           InstanceMethod("uncache", &SessionWrap::Uncache),
                           InstanceMethod("setFileData", &SessionWrap::SetFileData),
                           InstanceMethod("clearFileData", &SessionWrap::ClearFileData),
                           InstanceMethod("setFileRuns", &SessionWrap::SetFileRuns),
                           InstanceMethod("invalidateInode", &SessionWrap::InvalidateInode),
                           InstanceMethod("invalidateEntry", &SessionWrap::InvalidateEntry),
                           InstanceMethod("stats", &SessionWrap::Stats),
                           InstanceMethod("close", &SessionWrap::Close),
                           InstanceMethod("release", &SessionWrap::Release),
                           InstanceMethod("fds", &SessionWrap::Fds),
                           InstanceMethod("negotiated", &SessionWrap::NegotiatedInfo),
                           InstanceMethod("handed", &SessionWrap::HandedInfo),
                       });
  }

  // new NativeSession(options, onEvents[, adopt]): mounts, or with adopt =
  // {fd, minor, flags: bigint, maxPages, passthrough, adopted: BigUint64Array[, files]}
  // serves that existing connection (adopt.cc); files as handed() returns them.
  explicit SessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction() ||
        (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsObject())) {
      Napi::TypeError::New(env, "NativeSession(options, onEvents[, adopt])").ThrowAsJavaScriptException();
      return;
    }
    MountOptions o;
    Napi::Object opts = info[0].As<Napi::Object>();
    if (!opts.Get("mountpoint").IsString()) {
      Napi::TypeError::New(env, "options.mountpoint must be a string").ThrowAsJavaScriptException();
      return;
    }
    o.mountpoint = opts.Get("mountpoint").As<Napi::String>().Utf8Value();
    auto str = [&](const char* k, std::string* out) {
      Napi::Value v = opts.Get(k);
      if (v.IsString()) *out = v.As<Napi::String>().Utf8Value();
    };
    auto flag = [&](const char* k, bool* out) {
      Napi::Value v = opts.Get(k);
      if (v.IsBoolean()) *out = v.As<Napi::Boolean>().Value();
    };
    auto num = [&](const char* k, double def) {
      Napi::Value v = opts.Get(k);
      return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
    };
    str("fsName", &o.fsname);
    str("subtype", &o.subtype);
    str("openModesFile", &o.open_modes_file);
    o.open_modes_capacity = static_cast<uint32_t>(std::clamp(num("openModesCapacity", 1 << 16), 1.0, 4194304.0));
    flag("exec", &o.exec);
    flag("suid", &o.suid);
    flag("dev", &o.dev);
    flag("allowOther", &o.allow_other);
    flag("defaultPermissions", &o.default_permissions);
    flag("keepCache", &o.keep_cache);
    flag("cloneFd", &o.clone_fd);
    flag("notifyForget", &o.notify_forget);
    flag("notifyRelease", &o.notify_release);
    flag("notifyOpen", &o.notify_open);
    flag("openHook", &o.open_hook);
    flag("passthrough", &o.passthrough);
    flag("kernelOpens", &o.kernel_opens);
    o.threads = static_cast<unsigned>(num("threads", 4));
    o.owner_uid = static_cast<int64_t>(num("ownerUid", -1));
    o.owner_gid = static_cast<int64_t>(num("ownerGid", -1));
    o.readdirplus = static_cast<int>(num("readdirplus", 2));
    o.cache_limit = static_cast<uint64_t>(std::max(1.0, num("cacheLimit", 1 << 20)));
    o.pread_files = static_cast<uint64_t>(std::clamp(num("preadFiles", 0), 0.0, 1e9));
    o.negative_timeout = TimeoutFromSeconds(num("negativeTimeout", 0));
    o.max_pages = static_cast<unsigned>(num("maxPages", 256));
    o.data_serving = static_cast<int>(num("dataServing", kServeAuto));
    o.request_timeout_ms = static_cast<uint64_t>(std::clamp(num("requestTimeoutMs", 0), 0.0, 1e12));
    o.generation = static_cast<uint32_t>(std::clamp(num("generation", 0), 0.0, 4194303.0));  // 22 bits above the fh counter's 41
    Napi::Value root = opts.Get("rootIno");
    if (root.IsBigInt()) {
      bool lossless;
      o.root_key = root.As<Napi::BigInt>().Uint64Value(&lossless);
    }
    bool adopting = info.Length() > 2 && info[2].IsObject();
    int adopt_fd = -1;
    Negotiated negotiated;
    std::vector<uint64_t> adopted;
    HandedFiles files;
    if (adopting) {
      Napi::Object a = info[2].As<Napi::Object>();
      Napi::Value flags = a.Get("flags");
      Napi::Value keys = a.Get("adopted");
      if (!a.Get("fd").IsNumber() || !a.Get("minor").IsNumber() || !a.Get("maxPages").IsNumber() ||
          !flags.IsBigInt() || !keys.IsTypedArray() ||
          keys.As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array) {
        Napi::TypeError::New(env, "adopt: {fd, minor, flags, maxPages, passthrough, adopted}").ThrowAsJavaScriptException();
        return;
      }
      adopt_fd = a.Get("fd").As<Napi::Number>().Int32Value();
      negotiated.minor = a.Get("minor").As<Napi::Number>().Uint32Value();
      bool lossless;
      negotiated.flags = flags.As<Napi::BigInt>().Uint64Value(&lossless);
      negotiated.max_pages = a.Get("maxPages").As<Napi::Number>().Uint32Value();
      negotiated.passthrough = a.Get("passthrough").IsBoolean() && a.Get("passthrough").As<Napi::Boolean>().Value();
      negotiated.kernel_opens = a.Get("kernelOpens").IsBoolean() && a.Get("kernelOpens").As<Napi::Boolean>().Value();
      Napi::BigUint64Array arr = keys.As<Napi::BigUint64Array>();
      adopted.assign(arr.Data(), arr.Data() + arr.ElementLength());
      if (a.Has("files") && !a.Get("files").IsUndefined() && !FilesFrom(a.Get("files"), &files)) {
        Napi::TypeError::New(env, "adopt: files {opens: BigUint64Array, openModes: Int32Array (3 each), backings: BigUint64Array, backingIds: Int32Array}")
            .ThrowAsJavaScriptException();
        return;
      }
      files.given = a.Has("files") && !a.Get("files").IsUndefined();
    }

    int err = 0;
    std::string what;
    // The wrapper must outlive every queued call; the finalizer lets it go.
    // Made before mounting: the readers start inside Mount, and whoever can
    // reach the mountpoint may send a request the moment mount(2) returns.
    // The finalizer runs on a later turn of the loop, after the release: when
    // the mount fails, node-addon-api deletes this wrapper as the constructor
    // throws, so the finalizer must not reach it then (an Unref of a deleted
    // wrapper aborts the process in napi_get_last_error_info). It reaches the
    // wrapper through `owner`, which outlives it and is cleared on failure.
    Ref();
    auto* owner = new Owner{this};
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "strata-fuse", 0, 1, owner,
                                          [](Napi::Env, Owner* own) {
                                            if (own->wrap) own->wrap->Unref();
                                            delete own;
                                          });
    live_ = true;
    session_ = adopting ? Session::Adopt(o, adopt_fd, negotiated, adopted, files, this, &err, &what)
                        : Session::Mount(o, this, &err, &what);
    if (!session_) {
      live_ = false;
      owner->wrap = nullptr;
      Unref();
      tsfn_.Release();
      Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
      e.Set("errno", Napi::Number::New(env, err));
      e.ThrowAsJavaScriptException();
      return;
    }
    napi_add_env_cleanup_hook(env, &SessionWrap::Cleanup, this);
    hooked_ = true;
  }

  /** What the thread-safe function's finalizer lets go of: the wrapper, unless its construction failed. */
  struct Owner {
    SessionWrap* wrap;
  };

  ~SessionWrap() override {
    if (hooked_) napi_remove_env_cleanup_hook(Env(), &SessionWrap::Cleanup, this);
    if (session_) session_->Stop();
  }

  // Reader threads: queue, and schedule one drain unless one is due already.
  void Post(Event&& event) override {
    bool call = false;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      queue_.push_back(std::move(event));
      if (!scheduled_) {
        scheduled_ = true;
        call = true;
      }
    }
    if (call) tsfn_.NonBlockingCall([this](Napi::Env env, Napi::Function cb) { Drain(env, cb); });
  }

 private:
  static void Cleanup(void* arg) {
    auto* self = static_cast<SessionWrap*>(arg);
    self->hooked_ = false;
    self->Shutdown();
  }

  void Shutdown() {
    if (session_) session_->Stop();
    if (live_) {
      live_ = false;
      tsfn_.Release();
    }
  }

  void Drain(Napi::Env env, Napi::Function cb) {
    std::vector<Event> batch;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      batch.swap(queue_);
      scheduled_ = false;
    }
    if (!live_ || batch.empty()) return;
    Napi::HandleScope scope(env);
    Napi::Array arr = Napi::Array::New(env);
    uint32_t i = 0;
    for (Event& ev : batch) {
      // Answered meanwhile (by the deadline thread, an interrupt): no handler needs to run.
      if (ev.kind == Event::kRequest && session_ && !session_->Waiting(ev.request.id)) continue;
      arr.Set(i++, EventToJs(env, ev));
    }
    if (i == 0) return;
    cb.Call({arr});
  }

  // ---- argument helpers: false (with a pending JS exception) when wrong ----
  bool Id(const Napi::CallbackInfo& info, size_t i, uint64_t* out) {
    if (info.Length() <= i || !info[i].IsNumber()) return Fail(info, "request id must be a number");
    *out = static_cast<uint64_t>(info[i].As<Napi::Number>().Int64Value());
    return true;
  }
  bool Key(const Napi::CallbackInfo& info, size_t i, uint64_t* out) {
    if (info.Length() <= i || !info[i].IsBigInt()) return Fail(info, "ino must be a bigint");
    bool lossless;
    *out = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) return Fail(info, "ino must fit 64 bits");
    return true;
  }
  bool Bytes(const Napi::CallbackInfo& info, size_t i, const uint8_t** p, size_t* n) {
    if (info.Length() <= i || !info[i].IsBuffer()) return Fail(info, "expected a Buffer");
    auto b = info[i].As<Napi::Buffer<uint8_t>>();
    *p = b.Data();
    *n = b.Length();
    return true;
  }
  // A path component: 1-255 bytes without '/' or NUL, copied out of the Buffer.
  bool NameArg(const Napi::CallbackInfo& info, size_t i, std::string* out) {
    const uint8_t* p;
    size_t n;
    if (!Bytes(info, i, &p, &n)) return false;
    if (!ValidName(reinterpret_cast<const char*>(p), n)) return Fail(info, "name must be 1-255 bytes without '/' or NUL");
    out->assign(reinterpret_cast<const char*>(p), n);
    return true;
  }
  bool AttrArg(const Napi::CallbackInfo& info, size_t i, fuse_attr* out) {
    const uint8_t* p;
    size_t n;
    if (!Bytes(info, i, &p, &n)) return false;
    if (n != sizeof(fuse_attr)) return Fail(info, "attr must be packed by encodeAttr");
    std::memcpy(out, p, sizeof(fuse_attr));
    return true;
  }
  double Seconds(const Napi::CallbackInfo& info, size_t i) {
    return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : 0;
  }
  bool Fail(const Napi::CallbackInfo& info, const char* msg) {
    Napi::TypeError::New(info.Env(), msg).ThrowAsJavaScriptException();
    return false;
  }
  bool Open(const Napi::CallbackInfo& info) {
    if (!session_) return Fail(info, "session is not mounted");
    return true;
  }
  Napi::Value Result(const Napi::CallbackInfo& info, int r) { return Napi::Number::New(info.Env(), r); }

  // ---- replies ----
  Napi::Value ReplyError(const Napi::CallbackInfo& info) {
    uint64_t id = 0;
    if (!Open(info) || !Id(info, 0, &id)) return info.Env().Undefined();
    int e = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : EIO;
    return Result(info, session_->ReplyError(id, e));
  }
  // replyEntry(id, ino, attr, entryTimeout, attrTimeout, cacheTtl)
  Napi::Value ReplyEntry(const Napi::CallbackInfo& info) {
    uint64_t id = 0, key = 0;
    fuse_attr attr;
    if (!Open(info) || !Id(info, 0, &id)) return info.Env().Undefined();
    if (!Key(info, 1, &key) || !AttrArg(info, 2, &attr)) {
      session_->ReplyError(id, EIO);
      return info.Env().Undefined();
    }
    return Result(info, session_->ReplyEntry(id, key, attr, TimeoutFromSeconds(Seconds(info, 3)),
                                             TimeoutFromSeconds(Seconds(info, 4)), ExpiryFromSeconds(Seconds(info, 5))));
  }
  // replyNegative(id, entryTimeout, cacheTtl)
  Napi::Value ReplyNegative(const Napi::CallbackInfo& info) {
    uint64_t id = 0;
    if (!Open(info) || !Id(info, 0, &id)) return info.Env().Undefined();
    return Result(info, session_->ReplyNegative(id, TimeoutFromSeconds(Seconds(info, 1)),
                                                ExpiryFromSeconds(Seconds(info, 2))));
  }
  // replyAttr(id, attr, attrTimeout, cacheTtl)
  Napi::Value ReplyAttr(const Napi::CallbackInfo& info) {
    uint64_t id = 0;
    fuse_attr attr;
    if (!Open(info) || !Id(info, 0, &id)) return info.Env().Undefined();
    if (!AttrArg(info, 1, &attr)) {
      session_->ReplyError(id, EIO);
      return info.Env().Undefined();
    }
    return Result(info, session_->ReplyAttr(id, attr, TimeoutFromSeconds(Seconds(info, 2)),
                                            ExpiryFromSeconds(Seconds(info, 3))));
  }
  // replyListing(id, packed, entryTimeout, attrTimeout, cacheTtl)
  Napi::Value ReplyListing(const Napi::CallbackInfo& info) {
    uint64_t id = 0;
    const uint8_t* p;
    size_t n;
    if (!Open(info) || !Id(info, 0, &id)) return info.Env().Undefined();
    if (!Bytes(info, 1, &p, &n)) {
      session_->ReplyError(id, EIO);
      return info.Env().Undefined();
    }
    std::shared_ptr<Listing> listing = ParseListing(p, n);
    if (!listing) {
      session_->ReplyError(id, EIO);
      return Result(info, -EINVAL);
    }
    listing->entry_timeout = TimeoutFromSeconds(Seconds(info, 2));
    listing->attr_timeout = TimeoutFromSeconds(Seconds(info, 3));
    int64_t expires = ExpiryFromSeconds(Seconds(info, 4));
    listing->expires = expires;  // 0: served to this handle only
    return Result(info, session_->ReplyListing(id, listing, expires > 0));
  }
  // replyData(id, buffer)
  Napi::Value ReplyData(const Napi::CallbackInfo& info) {
    uint64_t id = 0;
    const uint8_t* p;
    size_t n;
    if (!Open(info) || !Id(info, 0, &id)) return info.Env().Undefined();
    if (!Bytes(info, 1, &p, &n)) {
      session_->ReplyError(id, EIO);
      return info.Env().Undefined();
    }
    return Result(info, session_->ReplyData(id, reinterpret_cast<const char*>(p), n));
  }
  // replyLink(id, target, cacheTtl)
  Napi::Value ReplyLink(const Napi::CallbackInfo& info) {
    uint64_t id = 0;
    const uint8_t* p;
    size_t n;
    if (!Open(info) || !Id(info, 0, &id)) return info.Env().Undefined();
    if (!Bytes(info, 1, &p, &n)) {
      session_->ReplyError(id, EIO);
      return info.Env().Undefined();
    }
    return Result(info, session_->ReplyLink(id, std::string(reinterpret_cast<const char*>(p), n),
                                            ExpiryFromSeconds(Seconds(info, 2))));
  }
  // replyXattr(id, bytes): a value (GETXATTR) or NUL-terminated names (LISTXATTR)
  Napi::Value ReplyXattr(const Napi::CallbackInfo& info) {
    uint64_t id = 0;
    const uint8_t* p;
    size_t n;
    if (!Open(info) || !Id(info, 0, &id)) return info.Env().Undefined();
    if (!Bytes(info, 1, &p, &n)) {
      session_->ReplyError(id, EIO);
      return info.Env().Undefined();
    }
    return Result(info, session_->ReplyXattr(id, reinterpret_cast<const char*>(p), n));
  }
  // replyOpen(id): the open handler is done (file data registered or not); the OPEN is answered from what is now.
  Napi::Value ReplyOpen(const Napi::CallbackInfo& info) {
    uint64_t id = 0;
    if (!Open(info) || !Id(info, 0, &id)) return info.Env().Undefined();
    return Result(info, session_->ReplyOpen(id));
  }
  // replyStatfs(id, packed, cacheTtl)
  Napi::Value ReplyStatfs(const Napi::CallbackInfo& info) {
    uint64_t id = 0;
    const uint8_t* p;
    size_t n;
    if (!Open(info) || !Id(info, 0, &id)) return info.Env().Undefined();
    if (!Bytes(info, 1, &p, &n) || n != sizeof(fuse_kstatfs)) {
      session_->ReplyError(id, EIO);
      return info.Env().Undefined();
    }
    fuse_kstatfs st;
    std::memcpy(&st, p, sizeof(st));
    return Result(info, session_->ReplyStatfs(id, st, ExpiryFromSeconds(Seconds(info, 2))));
  }

  // ---- cache fills ----
  // cacheEntry(parent, name, ino, attr, entryTimeout, attrTimeout, ttl)
  Napi::Value CacheEntry(const Napi::CallbackInfo& info) {
    uint64_t parent, key;
    std::string n;
    fuse_attr attr;
    if (!Open(info) || !Key(info, 0, &parent) || !NameArg(info, 1, &n) || !Key(info, 2, &key) ||
        !AttrArg(info, 3, &attr)) {
      return info.Env().Undefined();
    }
    int64_t expires = ExpiryFromSeconds(Seconds(info, 6));
    if (expires == 0) return info.Env().Undefined();
    session_->cache().PutAttr(key, AttrRecord{attr, TimeoutFromSeconds(Seconds(info, 5)), expires});
    session_->cache().PutEntry(parent, n, key, TimeoutFromSeconds(Seconds(info, 4)), expires);
    return info.Env().Undefined();
  }
  // cacheNegative(parent, name, entryTimeout, ttl)
  Napi::Value CacheNegative(const Napi::CallbackInfo& info) {
    uint64_t parent;
    std::string n;
    if (!Open(info) || !Key(info, 0, &parent) || !NameArg(info, 1, &n)) return info.Env().Undefined();
    int64_t expires = ExpiryFromSeconds(Seconds(info, 3));
    if (expires == 0) return info.Env().Undefined();
    session_->cache().PutNegative(parent, n, TimeoutFromSeconds(Seconds(info, 2)), expires);
    return info.Env().Undefined();
  }
  // cacheAttr(ino, attr, attrTimeout, ttl)
  Napi::Value CacheAttr(const Napi::CallbackInfo& info) {
    uint64_t key;
    fuse_attr attr;
    if (!Open(info) || !Key(info, 0, &key) || !AttrArg(info, 1, &attr)) return info.Env().Undefined();
    int64_t expires = ExpiryFromSeconds(Seconds(info, 3));
    if (expires == 0) return info.Env().Undefined();
    session_->cache().PutAttr(key, AttrRecord{attr, TimeoutFromSeconds(Seconds(info, 2)), expires});
    return info.Env().Undefined();
  }
  // cacheListing(ino, packed, entryTimeout, attrTimeout, ttl)
  Napi::Value CacheListing(const Napi::CallbackInfo& info) {
    uint64_t key;
    const uint8_t* p;
    size_t n;
    if (!Open(info) || !Key(info, 0, &key) || !Bytes(info, 1, &p, &n)) return info.Env().Undefined();
    std::shared_ptr<Listing> listing = ParseListing(p, n);
    if (!listing) {
      Fail(info, "listing must be packed by encodeListing");
      return info.Env().Undefined();
    }
    int64_t expires = ExpiryFromSeconds(Seconds(info, 4));
    if (expires == 0) return info.Env().Undefined();
    listing->entry_timeout = TimeoutFromSeconds(Seconds(info, 2));
    listing->attr_timeout = TimeoutFromSeconds(Seconds(info, 3));
    listing->expires = expires;
    listing->BuildIndex();
    session_->cache().PutListing(key, listing);
    return info.Env().Undefined();
  }
  // cacheLink(ino, target, ttl)
  Napi::Value CacheLink(const Napi::CallbackInfo& info) {
    uint64_t key;
    const uint8_t* p;
    size_t n;
    if (!Open(info) || !Key(info, 0, &key) || !Bytes(info, 1, &p, &n)) return info.Env().Undefined();
    int64_t expires = ExpiryFromSeconds(Seconds(info, 2));
    if (expires == 0 || n == 0 || n > 4095) return info.Env().Undefined();
    session_->cache().PutLink(key, std::string(reinterpret_cast<const char*>(p), n), expires);
    return info.Env().Undefined();
  }
  // cacheXattrs(ino, packed, ttl)
  Napi::Value CacheXattrs(const Napi::CallbackInfo& info) {
    uint64_t key;
    const uint8_t* p;
    size_t n;
    if (!Open(info) || !Key(info, 0, &key) || !Bytes(info, 1, &p, &n)) return info.Env().Undefined();
    std::shared_ptr<XattrSet> set = ParseXattrs(p, n);
    if (!set) {
      Fail(info, "xattrs must be packed by encodeXattrs");
      return info.Env().Undefined();
    }
    int64_t expires = ExpiryFromSeconds(Seconds(info, 2));
    if (expires == 0) return info.Env().Undefined();
    set->expires = expires;
    session_->cache().PutXattrs(key, set);
    return info.Env().Undefined();
  }
  // cacheStatfs(packed, ttl)
  Napi::Value CacheStatfs(const Napi::CallbackInfo& info) {
    const uint8_t* p;
    size_t n;
    if (!Open(info) || !Bytes(info, 0, &p, &n)) return info.Env().Undefined();
    if (n != sizeof(fuse_kstatfs)) {
      Fail(info, "statfs must be packed by encodeStatfs");
      return info.Env().Undefined();
    }
    int64_t expires = ExpiryFromSeconds(Seconds(info, 1));
    if (expires == 0) return info.Env().Undefined();
    fuse_kstatfs st;
    std::memcpy(&st, p, sizeof(st));
    session_->CacheStatfs(st, expires);
    return info.Env().Undefined();
  }
  Napi::Value Uncache(const Napi::CallbackInfo& info) {
    uint64_t key;
    if (!Open(info) || !Key(info, 0, &key)) return info.Env().Undefined();
    session_->cache().Drop(key);
    return info.Env().Undefined();
  }

  bool Running(const Napi::CallbackInfo& info) { return !session_->ended() && !session_->stopped(); }

  // setFileData(ino, fd, mode) -> kServePassthrough (1) | kServePread (2) | -errno
  Napi::Value SetFileData(const Napi::CallbackInfo& info) {
    uint64_t key;
    if (!Open(info) || !Key(info, 0, &key)) return info.Env().Undefined();
    if (info.Length() < 3 || !info[1].IsNumber() || !info[2].IsNumber()) {
      Fail(info, "setFileData(ino, fd, mode)");
      return info.Env().Undefined();
    }
    if (!Running(info)) return Result(info, -ENOTCONN);
    return Result(info, session_->SetFileData(key, info[1].As<Napi::Number>().Int32Value(),
                                              info[2].As<Napi::Number>().Int32Value()));
  }
  // setFileRuns(ino, fds: Int32Array, runs: Float64Array [offset, length, file (-1 hole), fileOffset]*, size)
  //   -> kServePread (2) | -errno
  Napi::Value SetFileRuns(const Napi::CallbackInfo& info) {
    uint64_t key;
    if (!Open(info) || !Key(info, 0, &key)) return info.Env().Undefined();
    if (info.Length() < 4 || !info[1].IsTypedArray() || !info[2].IsTypedArray() || !info[3].IsNumber() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
        info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      Fail(info, "setFileRuns(ino, fds: Int32Array, runs: Float64Array, size)");
      return info.Env().Undefined();
    }
    if (!Running(info)) return Result(info, -ENOTCONN);
    Napi::Int32Array fdsArr = info[1].As<Napi::Int32Array>();
    Napi::Float64Array runsArr = info[2].As<Napi::Float64Array>();
    const double sizeD = info[3].As<Napi::Number>().DoubleValue();
    const size_t n = runsArr.ElementLength() / 4;
    if (runsArr.ElementLength() % 4 != 0 || n > Session::kMaxFileRuns || fdsArr.ElementLength() > Session::kMaxRunFiles ||
        !(sizeD >= 0 && sizeD <= 9007199254740992.0)) {
      return Result(info, -EINVAL);
    }
    // Doubles carry offsets exactly up to 2^53; anything else is refused.
    auto whole = [](double v) { return v >= 0 && v <= 9007199254740992.0 && v == static_cast<double>(static_cast<uint64_t>(v)); };
    std::vector<int> fds(fdsArr.Data(), fdsArr.Data() + fdsArr.ElementLength());
    std::vector<FileData::Run> runs;
    runs.reserve(n);
    const double* v = runsArr.Data();
    for (size_t i = 0; i < n; i++) {
      const double* r = v + i * 4;
      if (!whole(r[0]) || !whole(r[1]) || !whole(r[3]) || !(r[2] >= -1 && r[2] < 65536 && r[2] == static_cast<double>(static_cast<int32_t>(r[2])))) {
        return Result(info, -EINVAL);
      }
      runs.push_back(FileData::Run{static_cast<uint64_t>(r[0]), static_cast<uint64_t>(r[1]), static_cast<int32_t>(r[2]),
                                   static_cast<uint64_t>(r[3])});
    }
    if (!whole(sizeD)) return Result(info, -EINVAL);
    return Result(info, session_->SetFileRuns(key, fds, std::move(runs), static_cast<uint64_t>(sizeD)));
  }
  // clearFileData(ino) -> 0 or -errno (-ENOENT: nothing registered)
  Napi::Value ClearFileData(const Napi::CallbackInfo& info) {
    uint64_t key;
    if (!Open(info) || !Key(info, 0, &key)) return info.Env().Undefined();
    if (!Running(info)) return Result(info, -ENOTCONN);
    return Result(info, session_->ClearFileData(key));
  }
  bool Signed(const Napi::CallbackInfo& info, size_t i, int64_t* out) {
    if (info.Length() <= i || !info[i].IsBigInt()) return Fail(info, "expected a bigint");
    bool lossless;
    *out = info[i].As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) return Fail(info, "must fit 64 bits (signed)");
    return true;
  }
  // invalidateInode(ino, offset, length) -> token > 0 | 0 (nothing to do) | -errno
  Napi::Value InvalidateInode(const Napi::CallbackInfo& info) {
    uint64_t key;
    int64_t offset = 0, length = -1;
    if (!Open(info) || !Key(info, 0, &key) || !Signed(info, 1, &offset) || !Signed(info, 2, &length)) {
      return info.Env().Undefined();
    }
    if (!Running(info)) return Result64(info, -ENOTCONN);
    return Result64(info, session_->InvalidateInode(key, offset, length));
  }
  // invalidateEntry(parent, name) -> token > 0 | 0 | -errno
  Napi::Value InvalidateEntry(const Napi::CallbackInfo& info) {
    uint64_t parent;
    std::string n;
    if (!Open(info) || !Key(info, 0, &parent) || !NameArg(info, 1, &n)) return info.Env().Undefined();
    if (!Running(info)) return Result64(info, -ENOTCONN);
    return Result64(info, session_->InvalidateEntry(parent, n));
  }
  Napi::Value Result64(const Napi::CallbackInfo& info, int64_t r) {
    return Napi::Number::New(info.Env(), static_cast<double>(r));
  }

  // liveKeys(): BigUint64Array of the keys the session may still name (duplicates possible).
  Napi::Value LiveKeys(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!session_) return Napi::BigUint64Array::New(env, 0);
    std::vector<uint64_t> keys = session_->LiveKeys();
    Napi::BigUint64Array out = Napi::BigUint64Array::New(env, keys.size());
    if (!keys.empty()) std::memcpy(out.Data(), keys.data(), keys.size() * sizeof(uint64_t));
    return out;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!session_) return env.Undefined();
    SessionStats s = session_->Stats();
    Napi::Object o = Napi::Object::New(env);
    auto set = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(env, static_cast<double>(v))); };
    set("nodes", s.cache.nodes);
    set("cached", s.cache.cached);
    set("unreferenced", s.cache.unreferenced);
    set("cacheWeight", s.cache.lru_weight);
    set("negatives", s.cache.negatives);
    set("evictions", s.cache.evictions);
    set("requests", s.requests);
    set("native", s.native);
    set("toJs", s.to_js);
    set("pending", s.pending);
    set("interrupts", s.interrupts);
    set("openDirs", s.open_dirs);
    set("protocolMinor", s.proto_minor);
    set("maxPages", s.max_pages);
    set("initFlags", s.flags);
    set("backings", s.cache.backings);
    set("fileData", s.cache.file_data);
    set("preadReads", s.pread_reads);
    set("preadErrors", s.pread_errors);
    set("preadEvictions", s.cache.pread_evictions);
    set("notices", s.notices);
    set("timeouts", s.timeouts);
    set("lateReplies", s.late_replies);
    set("handedOver", s.handed_over);
    o.Set("resendErrno", Napi::Number::New(env, s.resend_error));
    o.Set("released", Napi::Boolean::New(env, s.released));
    o.Set("passthrough", Napi::Boolean::New(env, s.passthrough));
    o.Set("kernelOpens", Napi::Boolean::New(env, s.kernel_opens));
    set("opens", s.opens);
    set("releases", s.releases);
    const OpenModesRestore& r = session_->restored();
    Napi::Object t = Napi::Object::New(env);
    t.Set("restoredFrom", Napi::String::New(env, r.source));
    t.Set("problem", Napi::String::New(env, r.problem));
    t.Set("restoredOpens", Napi::Number::New(env, r.opens));
    t.Set("restoredBackings", Napi::Number::New(env, r.backings));
    t.Set("records", Napi::Number::New(env, session_->open_table_records()));
    t.Set("capacity", Napi::Number::New(env, session_->open_table_capacity()));
    t.Set("overflowed", Napi::Boolean::New(env, session_->open_table_overflowed() || r.overflowed));
    o.Set("openModes", t);
    return o;
  }

  // release() -> 0 (released) | 1 (a kEnd "released" event follows) | -errno
  Napi::Value Release(const Napi::CallbackInfo& info) {
    if (!Open(info)) return info.Env().Undefined();
    return Result(info, session_->Release());
  }

  // fds() -> number[]: the master first, then the readers' clones
  Napi::Value Fds(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<int> fds = session_ ? session_->Fds() : std::vector<int>();
    Napi::Array out = Napi::Array::New(env, fds.size());
    for (uint32_t i = 0; i < fds.size(); i++) out.Set(i, Napi::Number::New(env, fds[i]));
    return out;
  }

  // negotiated() -> {minor, flags: bigint, maxPages, maxWrite, passthrough, generation}
  Napi::Value NegotiatedInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(info)) return env.Undefined();
    Negotiated n = session_->negotiated();
    Napi::Object o = Napi::Object::New(env);
    o.Set("minor", Napi::Number::New(env, n.minor));
    o.Set("flags", Napi::BigInt::New(env, n.flags));
    o.Set("maxPages", Napi::Number::New(env, n.max_pages));
    o.Set("maxWrite", Napi::Number::New(env, static_cast<double>(n.max_pages) * 4096));
    o.Set("passthrough", Napi::Boolean::New(env, n.passthrough));
    o.Set("kernelOpens", Napi::Boolean::New(env, n.kernel_opens));
    o.Set("generation", Napi::Number::New(env, session_->options().generation));
    return o;
  }

  // handed() -> {opens: BigUint64Array, openModes: Int32Array (cached,
  // passthrough, backingId per key), backings: BigUint64Array, backingIds:
  // Int32Array}: what release() left in the kernel for a successor.
  Napi::Value HandedInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(info)) return env.Undefined();
    const HandedFiles& h = session_->Handed();
    Napi::BigUint64Array opens = Napi::BigUint64Array::New(env, h.opens.size());
    Napi::Int32Array modes = Napi::Int32Array::New(env, h.opens.size() * 3);
    for (size_t i = 0; i < h.opens.size(); i++) {
      opens[i] = h.opens[i].key;
      modes[i * 3] = static_cast<int32_t>(std::min<uint32_t>(h.opens[i].cached, INT32_MAX));
      modes[i * 3 + 1] = static_cast<int32_t>(std::min<uint32_t>(h.opens[i].passthrough, INT32_MAX));
      modes[i * 3 + 2] = h.opens[i].backing_id;
    }
    Napi::BigUint64Array backings = Napi::BigUint64Array::New(env, h.backings.size());
    Napi::Int32Array ids = Napi::Int32Array::New(env, h.backings.size());
    for (size_t i = 0; i < h.backings.size(); i++) {
      backings[i] = h.backings[i].key;
      ids[i] = h.backings[i].backing_id;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("opens", opens);
    o.Set("openModes", modes);
    o.Set("backings", backings);
    o.Set("backingIds", ids);
    return o;
  }

  static bool FilesFrom(Napi::Value v, HandedFiles* out) {
    if (!v.IsObject()) return false;
    Napi::Object f = v.As<Napi::Object>();
    auto typed = [&](const char* name, napi_typedarray_type type) {
      Napi::Value x = f.Get(name);
      return x.IsTypedArray() && x.As<Napi::TypedArray>().TypedArrayType() == type;
    };
    if (!typed("opens", napi_biguint64_array) || !typed("openModes", napi_int32_array) ||
        !typed("backings", napi_biguint64_array) || !typed("backingIds", napi_int32_array)) {
      return false;
    }
    Napi::BigUint64Array opens = f.Get("opens").As<Napi::BigUint64Array>();
    Napi::Int32Array modes = f.Get("openModes").As<Napi::Int32Array>();
    Napi::BigUint64Array backings = f.Get("backings").As<Napi::BigUint64Array>();
    Napi::Int32Array ids = f.Get("backingIds").As<Napi::Int32Array>();
    if (modes.ElementLength() != opens.ElementLength() * 3 || ids.ElementLength() != backings.ElementLength()) return false;
    for (size_t i = 0; i < opens.ElementLength(); i++) {
      HandedOpen h;
      h.key = opens[i];
      h.cached = static_cast<uint32_t>(std::max<int32_t>(modes[i * 3], 0));
      h.passthrough = static_cast<uint32_t>(std::max<int32_t>(modes[i * 3 + 1], 0));
      h.backing_id = modes[i * 3 + 2];
      out->opens.push_back(h);
    }
    for (size_t i = 0; i < backings.ElementLength(); i++) out->backings.push_back(HandedBacking{backings[i], ids[i]});
    return true;
  }

  // close(): stop the readers, close the fds, release the thread-safe function.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::unique_ptr<Session> session_;
  Napi::ThreadSafeFunction tsfn_;
  bool live_ = false;
  bool hooked_ = false;
  std::mutex queue_mu_;
  std::vector<Event> queue_;
  bool scheduled_ = false;
};

// native/peer-cred.cc
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);
Napi::Value SdNotify(const Napi::CallbackInfo& info);
// fd-passing.cc (SCM_RIGHTS): registers its functions on the exports.
void RegisterFdPassing(Napi::Env env, Napi::Object exports);

}  // namespace strata_fuse

static Napi::Value UmountFn(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(info.Env(), "umount(path)").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), strata_fuse::Unmount(info[0].As<Napi::String>().Utf8Value()));
}

// takeFd(pid, fd) -> a copy of process pid's fd (the same open file, close-on-exec) by
// pidfd_getfd(2), which needs ptrace rights over pid (root). What lets a takeover be
// tested with a plain child process as the holder: its fds come back without a socket.
static Napi::Value TakeFdFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "takeFd(pid, fd)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, info[0].As<Napi::Number>().Int32Value(), 0));
  int fd = pidfd < 0 ? -1 : static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, info[1].As<Napi::Number>().Int32Value(), 0));
  int e = errno;
  if (pidfd >= 0) close(pidfd);
  if (fd < 0) {
    Napi::Error err = Napi::Error::New(env, std::string("pidfd_getfd: ") + std::strerror(e));
    err.Set("errno", Napi::Number::New(env, e));
    err.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// readOpenTable(path) -> {ok, problem, generation, overflowed, opens: [key bigint, cached,
// passthrough, backingId][], registered: [key bigint, backingId][]}: what an adopting
// session would take from an open-modes file (open-table.h), for tests of its checks.
static Napi::Value ReadOpenTableFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "readOpenTable(path)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  strata_fuse::OpenTableContents c;
  std::string why;
  bool ok = strata_fuse::OpenTable::Read(info[0].As<Napi::String>().Utf8Value(), &c, &why);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", Napi::Boolean::New(env, ok));
  o.Set("problem", Napi::String::New(env, why));
  o.Set("generation", Napi::Number::New(env, c.generation));
  o.Set("overflowed", Napi::Boolean::New(env, c.overflowed));
  Napi::Array opens = Napi::Array::New(env, c.opens.size());
  for (uint32_t i = 0; i < c.opens.size(); i++) {
    Napi::Array e = Napi::Array::New(env, 4);
    e.Set(0u, Napi::BigInt::New(env, c.opens[i].key));
    e.Set(1u, Napi::Number::New(env, c.opens[i].cached));
    e.Set(2u, Napi::Number::New(env, c.opens[i].passthrough));
    e.Set(3u, Napi::Number::New(env, c.opens[i].backing_id));
    opens.Set(i, e);
  }
  Napi::Array reg = Napi::Array::New(env, c.registered.size());
  for (uint32_t i = 0; i < c.registered.size(); i++) {
    Napi::Array e = Napi::Array::New(env, 2);
    e.Set(0u, Napi::BigInt::New(env, c.registered[i].first));
    e.Set(1u, Napi::Number::New(env, c.registered[i].second));
    reg.Set(i, e);
  }
  o.Set("opens", opens);
  o.Set("registered", reg);
  return o;
}

// The native opcode table (opcodes.cc) as JavaScript sees it, so src/ops.ts can be checked against it.
static Napi::Array OpcodeRows(Napi::Env env) {
  Napi::Array rows = Napi::Array::New(env);
  uint32_t i = 0;
  for (uint32_t op = 0; op < strata_fuse::kOpcodeLimit; op++) {
    const strata_fuse::Opcode& row = strata_fuse::OpcodeOf(op);
    if (row.name == nullptr) continue;
    Napi::Object o = Napi::Object::New(env);
    o.Set("opcode", Napi::Number::New(env, op));
    o.Set("name", Napi::String::New(env, row.name));
    o.Set("js", Napi::Number::New(env, static_cast<int>(row.js)));
    o.Set("hasName", Napi::Boolean::New(env, row.has_name));
    o.Set("cached", Napi::Boolean::New(env, row.cached));
    o.Set("refuse", Napi::Number::New(env, row.handler == nullptr ? row.refuse : 0));
    rows.Set(i++, o);
  }
  return rows;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("opcodes", OpcodeRows(env));
  exports.Set("NativeSession", strata_fuse::SessionWrap::Define(env));
  exports.Set("umount", Napi::Function::New(env, UmountFn));
  exports.Set("takeFd", Napi::Function::New(env, TakeFdFn));
  exports.Set("readOpenTable", Napi::Function::New(env, ReadOpenTableFn));
  exports.Set("peerCredentials", Napi::Function::New(env, strata_fuse::PeerCredentials));
  exports.Set("sdNotify", Napi::Function::New(env, strata_fuse::SdNotify));
  strata_fuse::RegisterFdPassing(env, exports);
  exports.Set("protocolMinor", Napi::Number::New(env, FUSE_KERNEL_MINOR_VERSION));
  exports.Set("attrSize", Napi::Number::New(env, sizeof(fuse_attr)));
  exports.Set("statfsSize", Napi::Number::New(env, sizeof(fuse_kstatfs)));
  return exports;
}

NODE_API_MODULE(fuse_kernel, Init)
