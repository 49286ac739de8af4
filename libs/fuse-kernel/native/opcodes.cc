// The rows of the per-opcode table (opcodes.h). Adding an op: a row here, its
// handler in the handlers-*.cc of its concern (declared in session.h), and,
// if it can reach JavaScript, its reply (replies.cc, addon.cc) and src/ops.ts.
#include "opcodes.h"

#include <array>

#include "session.h"

namespace strata_fuse {

struct OpcodeTable {
  static std::array<Opcode, kOpcodeLimit> Build();
};

namespace {

// Rows by what they do; each sets only what differs from Opcode's defaults.
Opcode Refused(const char* name, int errno_value) {
  Opcode o;
  o.name = name;
  o.refuse = errno_value;
  return o;
}

Opcode Served(const char* name, Handler handler, size_t in_size = 0) {
  Opcode o;
  o.name = name;
  o.handler = handler;
  o.in_size = in_size;
  return o;
}

// A request about a node: its nodeid is resolved to the key JavaScript gave it.
Opcode OfNode(const char* name, Handler handler, size_t in_size = 0) {
  Opcode o = Served(name, handler, in_size);
  o.resolve = true;
  return o;
}

// Answered from the native cache when it can, else by JavaScript with `js`.
Opcode Cached(const char* name, Handler handler, size_t in_size, JsAnswer js) {
  Opcode o = OfNode(name, handler, in_size);
  o.cached = true;
  o.js = js;
  return o;
}

Opcode Unanswered(const char* name, Handler handler, size_t in_size) {
  Opcode o = Served(name, handler, in_size);
  o.reply = false;
  return o;
}

Opcode WithJs(Opcode o, JsAnswer js) {
  o.js = js;
  return o;
}

Opcode Named(Opcode o) {
  o.has_name = true;
  return o;
}

}  // namespace

std::array<Opcode, kOpcodeLimit> OpcodeTable::Build() {
  std::array<Opcode, kOpcodeLimit> t{};
  auto row = [&t](uint32_t op, Opcode o) { t[op] = o; };

  // Served from the native cache or JavaScript.
  row(FUSE_LOOKUP, Named(Cached("lookup", &Session::OnLookup, 0, JsAnswer::kEntry)));
  row(FUSE_GETATTR, Cached("getattr", &Session::OnGetattr, 0, JsAnswer::kAttr));
  row(FUSE_READLINK, Cached("readlink", &Session::OnReadlink, 0, JsAnswer::kLink));
  row(FUSE_READ, Cached("read", &Session::OnRead, sizeof(fuse_read_in), JsAnswer::kData));
  row(FUSE_STATFS, Cached("statfs", &Session::OnStatfs, 0, JsAnswer::kStatfs));
  row(FUSE_GETXATTR, Named(Cached("getxattr", &Session::OnGetxattr, sizeof(fuse_getxattr_in), JsAnswer::kXattr)));
  row(FUSE_LISTXATTR, Cached("listxattr", &Session::OnListxattr, sizeof(fuse_getxattr_in), JsAnswer::kXattr));
  row(FUSE_READDIR, Cached("readdir", &Session::OnReaddir, sizeof(fuse_read_in), JsAnswer::kListing));
  row(FUSE_READDIRPLUS, Cached("readdirplus", &Session::OnReaddir, sizeof(fuse_read_in), JsAnswer::kListing));

  // Always answered natively.
  // Native, except a first OPEN asked of JavaScript under openHook (the answer is still built here).
  row(FUSE_OPEN, WithJs(OfNode("open", &Session::OnOpen, sizeof(fuse_open_in)), JsAnswer::kOpen));
  row(FUSE_RELEASE, OfNode("release", &Session::OnRelease, sizeof(fuse_release_in)));
  row(FUSE_OPENDIR, OfNode("opendir", &Session::OnOpendir));
  row(FUSE_RELEASEDIR, Served("releasedir", &Session::OnReleasedir, sizeof(fuse_release_in)));
  row(FUSE_INIT, Served("init", &Session::OnInit));  // only once, in Session::Negotiate
  row(FUSE_DESTROY, Served("destroy", &Session::OnDestroy));

  // Answered by nothing but their handler (see Opcode::reply).
  row(FUSE_FORGET, Unanswered("forget", &Session::OnForget, sizeof(fuse_forget_in)));
  row(FUSE_BATCH_FORGET, Unanswered("batch_forget", &Session::OnBatchForget, sizeof(fuse_batch_forget_in)));
  row(FUSE_INTERRUPT, Unanswered("interrupt", &Session::OnInterrupt, sizeof(fuse_interrupt_in)));
  row(FUSE_NOTIFY_REPLY, Unanswered("notify_reply", &Session::OnNotifyReply, 0));  // we send no retrieve requests

  // Read-only: whatever would write.
  for (auto [op, name] : {std::pair<uint32_t, const char*>{FUSE_SETATTR, "setattr"}, {FUSE_SYMLINK, "symlink"},
                          {FUSE_MKNOD, "mknod"}, {FUSE_MKDIR, "mkdir"}, {FUSE_UNLINK, "unlink"},
                          {FUSE_RMDIR, "rmdir"}, {FUSE_RENAME, "rename"}, {FUSE_LINK, "link"},
                          {FUSE_WRITE, "write"}, {FUSE_SETXATTR, "setxattr"}, {FUSE_REMOVEXATTR, "removexattr"},
                          {FUSE_CREATE, "create"}, {FUSE_FALLOCATE, "fallocate"}, {FUSE_RENAME2, "rename2"},
                          {FUSE_COPY_FILE_RANGE, "copy_file_range"}, {FUSE_TMPFILE, "tmpfile"}}) {
    row(op, Refused(name, EROFS));
  }
  // ENOSYS, which the kernel remembers and then handles itself (or, for
  // flush/fsync, succeeds); an opcode without a row gets the same.
  for (auto [op, name] : {std::pair<uint32_t, const char*>{FUSE_FLUSH, "flush"}, {FUSE_FSYNC, "fsync"},
                          {FUSE_FSYNCDIR, "fsyncdir"}, {FUSE_ACCESS, "access"}, {FUSE_GETLK, "getlk"},
                          {FUSE_SETLK, "setlk"}, {FUSE_SETLKW, "setlkw"}, {FUSE_BMAP, "bmap"},
                          {FUSE_IOCTL, "ioctl"}, {FUSE_POLL, "poll"}, {FUSE_LSEEK, "lseek"},
                          {FUSE_SETUPMAPPING, "setupmapping"}, {FUSE_REMOVEMAPPING, "removemapping"},
                          {FUSE_SYNCFS, "syncfs"}}) {
    row(op, Refused(name, ENOSYS));
  }
  return t;
}

const Opcode& OpcodeOf(uint32_t opcode) {
  static const std::array<Opcode, kOpcodeLimit> table = OpcodeTable::Build();
  static const Opcode unknown{};
  return opcode < kOpcodeLimit ? table[opcode] : unknown;
}

}  // namespace strata_fuse
