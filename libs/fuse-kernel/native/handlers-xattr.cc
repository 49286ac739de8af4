// GETXATTR and LISTXATTR from a node's cached xattr set, or JavaScript.
#include "session.h"

#include <errno.h>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

void Session::OnGetxattr(Request& r) {
  const fuse_getxattr_in in = Arg<fuse_getxattr_in>(r);
  std::shared_ptr<const XattrSet> set = cache_.Xattrs(r.key, MonotonicNs());
  if (set) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    for (const auto& [k, v] : set->items) {
      if (k == r.name) {
        SendXattr(r.fd, r.h.unique, in.size, v.data(), v.size());
        return;
      }
    }
    Send(r.fd, r.h.unique, ENODATA, nullptr, 0);
    return;
  }
  Pending p = PendingFor(r);
  p.name = std::move(r.name);
  p.size = in.size;
  ToJs(std::move(p));
}

void Session::OnListxattr(Request& r) {
  const fuse_getxattr_in in = Arg<fuse_getxattr_in>(r);
  std::shared_ptr<const XattrSet> set = cache_.Xattrs(r.key, MonotonicNs());
  if (set) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    std::string names;
    for (const auto& item : set->items) {
      names += item.first;
      names.push_back('\0');
    }
    SendXattr(r.fd, r.h.unique, in.size, names.data(), names.size());
    return;
  }
  Pending p = PendingFor(r);
  p.size = in.size;
  ToJs(std::move(p));
}

}  // namespace strata_fuse
