// Small pieces of the wire protocol shared by the session's files: limits,
// reading a request's arguments, and the Pending a request becomes when it
// goes to JavaScript.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "session.h"

namespace strata_fuse {

constexpr uint32_t kMinMinor = 28;  // max_pages and cache_symlinks
constexpr size_t kHeaderRoom = 0x1000;
constexpr size_t kXattrMax = 65536;  // XATTR_SIZE_MAX and XATTR_LIST_MAX
constexpr size_t kLinkMax = 4095;    // the kernel reads a link target into one page, NUL included
constexpr int kInitTimeoutMs = 10000;

// Time the kernel counts as "forever": timespec64_to_jiffies saturates far below it.
constexpr double kMaxTimeoutSec = 1e9;

template <typename T>
bool ReadArg(const char* arg, size_t n, T* out) {
  if (n < sizeof(T)) return false;
  std::memcpy(out, arg, sizeof(T));
  return true;
}

// A NUL-terminated name at arg, within n bytes.
inline bool ReadName(const char* arg, size_t n, std::string* out) {
  const void* nul = std::memchr(arg, 0, n);
  if (nul == nullptr) return false;
  out->assign(arg, static_cast<const char*>(nul) - arg);
  return true;
}

inline Pending PendingFor(int fd, const fuse_in_header& h, uint64_t key) {
  Pending p;
  p.unique = h.unique;
  p.fd = fd;
  p.opcode = h.opcode;
  p.nodeid = h.nodeid;
  p.key = key;
  p.uid = h.uid;
  p.gid = h.gid;
  p.pid = h.pid;
  return p;
}

// The argument struct of a request whose row (opcodes.cc) has in_size >= sizeof(T): dispatch checked the length.
template <typename T>
T Arg(const Request& r) {
  T in{};
  ReadArg(r.arg, r.n, &in);
  return in;
}

inline Pending PendingFor(const Request& r) { return PendingFor(r.fd, r.h, r.key); }

}  // namespace strata_fuse
