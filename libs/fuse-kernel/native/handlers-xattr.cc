// GETXATTR and LISTXATTR from a node's cached xattr set, or JavaScript.
#include "session.h"

#include <errno.h>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

void Session::OnGetxattr(int fd, const fuse_in_header& h, const char* arg, size_t n, uint64_t key) {
  fuse_getxattr_in in{};
  std::string name;
  if (!ReadArg(arg, n, &in) || !ReadName(arg + sizeof(in), n - sizeof(in), &name)) {
    Send(fd, h.unique, EINVAL, nullptr, 0);
    return;
  }
  std::shared_ptr<const XattrSet> set = cache_.Xattrs(key, MonotonicNs());
  if (set) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    for (const auto& [k, v] : set->items) {
      if (k == name) {
        SendXattr(fd, h.unique, in.size, v.data(), v.size());
        return;
      }
    }
    Send(fd, h.unique, ENODATA, nullptr, 0);
    return;
  }
  Pending p = PendingFor(fd, h, key);
  p.name = std::move(name);
  p.size = in.size;
  ToJs(std::move(p));
}

void Session::OnListxattr(int fd, const fuse_in_header& h, const char* arg, size_t n, uint64_t key) {
  fuse_getxattr_in in{};
  if (!ReadArg(arg, n, &in)) {
    Send(fd, h.unique, EINVAL, nullptr, 0);
    return;
  }
  std::shared_ptr<const XattrSet> set = cache_.Xattrs(key, MonotonicNs());
  if (set) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    std::string names;
    for (const auto& item : set->items) {
      names += item.first;
      names.push_back('\0');
    }
    SendXattr(fd, h.unique, in.size, names.data(), names.size());
    return;
  }
  Pending p = PendingFor(fd, h, key);
  p.size = in.size;
  ToJs(std::move(p));
}

}  // namespace strata_fuse
