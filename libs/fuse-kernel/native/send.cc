// Answers as the kernel reads them: the out header, an entry, a page of a
// listing, an xattr value or list. Used by native handlers and JavaScript's replies alike.
#include "session.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>
#include <algorithm>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

int Session::SendV(int fd, uint64_t unique, int error, const struct iovec* iov, int n) {
  fuse_out_header out{};
  struct iovec v[8];
  v[0].iov_base = &out;
  v[0].iov_len = sizeof(out);
  size_t len = sizeof(out);
  for (int i = 0; i < n && i < 7; i++) {
    v[i + 1] = iov[i];
    len += iov[i].iov_len;
  }
  out.len = static_cast<uint32_t>(len);
  out.error = -error;
  out.unique = unique;
  ssize_t w = writev(fd, v, std::min(n, 7) + 1);
  if (w < 0) return errno;
  return 0;
}

int Session::Send(int fd, uint64_t unique, int error, const void* data, size_t size) {
  if (error != 0 || size == 0) return SendV(fd, unique, error, nullptr, 0);
  struct iovec v{const_cast<void*>(data), size};
  return SendV(fd, unique, 0, &v, 1);
}

void Session::SendEntry(int fd, uint64_t unique, uint64_t key, const fuse_attr& attr, Timeout entry,
                        Timeout attr_timeout, const AttrRecord* seed) {
  if (cache_.NodeidFor(key) == 0) {
    // The one ino no nodeid can stand for (cache.h): a handler's answer naming it is refused, not hidden.
    Send(fd, unique, EIO, nullptr, 0);
    return;
  }
  uint64_t nodeid = cache_.Reference(key, seed);
  fuse_entry_out out{};
  out.nodeid = nodeid;
  out.generation = 0;
  out.entry_valid = entry.sec;
  out.entry_valid_nsec = entry.nsec;
  out.attr_valid = attr_timeout.sec;
  out.attr_valid_nsec = attr_timeout.nsec;
  out.attr = attr;
  if (Send(fd, unique, 0, &out, sizeof(out)) != 0) {
    // The kernel never took the entry (interrupted, aborted): undo its count.
    cache_.Forget(nodeid, 1, nullptr);
  }
}

void Session::SendListing(int fd, uint64_t unique, bool plus, const Listing& listing, uint64_t dir_key,
                          uint64_t offset, uint32_t size) {
  size = std::min<uint32_t>(size, static_cast<uint32_t>(bufsize_));
  std::vector<char> out(size);
  size_t used = 0;
  std::vector<uint64_t> counted;  // nodeids handed out in this reply
  const int64_t now = MonotonicNs();
  uint64_t dot = listing.dot_ino;
  if (dot == 0) {
    std::optional<AttrRecord> rec = cache_.Attr(dir_key, now);
    dot = rec ? rec->attr.ino : dir_key;
  }
  uint64_t dotdot = listing.dotdot_ino != 0 ? listing.dotdot_ino : dot;
  const uint64_t total = 2 + listing.entries.size();
  for (uint64_t i = offset; i < total; i++) {
    const ListEntry* e = i >= 2 ? &listing.entries[i - 2] : nullptr;
    std::string_view name = e ? std::string_view(e->name) : (i == 0 ? std::string_view(".") : std::string_view(".."));
    size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
    size_t rec = FUSE_DIRENT_ALIGN(head + name.size());
    if (used + rec > size) break;
    char* p = out.data() + used;
    std::memset(p, 0, rec);
    fuse_dirent d{};
    d.ino = e ? e->ino : (i == 0 ? dot : dotdot);
    d.off = i + 1;
    d.namelen = static_cast<uint32_t>(name.size());
    d.type = e ? e->type : 4 /* DT_DIR */;
    if (plus) {
      fuse_entry_out eo{};
      if (e != nullptr && e->has_attr) {
        // A cached listing also answers the GETATTRs that follow; one that
        // is not cached leaves nothing behind.
        AttrRecord seed{e->attr, listing.attr_timeout, listing.expires};
        // Nodeid 0 (the name only) for an entry invalidated since the listing was made.
        eo.nodeid = cache_.ReferenceListed(e->key, listing.expires > now ? &seed : nullptr, listing.made);
        if (eo.nodeid != 0) {
          counted.push_back(eo.nodeid);
          eo.entry_valid = listing.entry_timeout.sec;
          eo.entry_valid_nsec = listing.entry_timeout.nsec;
          eo.attr_valid = listing.attr_timeout.sec;
          eo.attr_valid_nsec = listing.attr_timeout.nsec;
          eo.attr = e->attr;
        }
      }
      std::memcpy(p, &eo, sizeof(eo));
      std::memcpy(p + sizeof(eo), &d, FUSE_NAME_OFFSET);
    } else {
      std::memcpy(p, &d, FUSE_NAME_OFFSET);
    }
    std::memcpy(p + head, name.data(), name.size());
    used += rec;
  }
  if (Send(fd, unique, 0, out.data(), used) != 0) {
    for (uint64_t nodeid : counted) cache_.Forget(nodeid, 1, nullptr);
  }
}

void Session::SendXattr(int fd, uint64_t unique, uint32_t size, const char* data, size_t len) {
  if (len > kXattrMax) {
    Send(fd, unique, E2BIG, nullptr, 0);
  } else if (size == 0) {
    fuse_getxattr_out out{};
    out.size = static_cast<uint32_t>(len);
    Send(fd, unique, 0, &out, sizeof(out));
  } else if (len > size) {
    Send(fd, unique, ERANGE, nullptr, 0);
  } else {
    Send(fd, unique, 0, data, len);
  }
}

}  // namespace strata_fuse
