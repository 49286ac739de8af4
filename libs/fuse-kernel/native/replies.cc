// Replies from JavaScript to the requests it was handed (Reply*), each checked
// against the op it answers.
#include "session.h"

#include <errno.h>
#include <algorithm>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

std::optional<Pending> Session::TakeFor(uint64_t id, JsAnswer kind, int* result) {
  std::optional<Pending> p = Take(id);
  if (!p) {
    *result = -ENOENT;
    return std::nullopt;
  }
  if (OpcodeOf(p->opcode).js != kind) {
    Send(p->fd, p->unique, EIO, nullptr, 0);
    *result = -EINVAL;
    return std::nullopt;
  }
  return p;
}

int Session::ReplyError(uint64_t id, int error) {
  std::optional<Pending> p = Take(id);
  if (!p) return -ENOENT;
  if (error <= 0 || error > 4095) error = EIO;
  Send(p->fd, p->unique, error, nullptr, 0);
  return 0;
}

int Session::ReplyEntry(uint64_t id, uint64_t key, const fuse_attr& attr, Timeout entry, Timeout attr_timeout,
                        int64_t cache_expires) {
  int result = 0;
  std::optional<Pending> p = TakeFor(id, JsAnswer::kEntry, &result);
  if (!p) return result;
  AttrRecord rec{attr, attr_timeout, cache_expires};
  if (cache_expires > 0) {
    cache_.PutAttr(key, rec);
    cache_.PutEntry(p->key, p->name, key, entry, cache_expires);
  }
  SendEntry(p->fd, p->unique, key, attr, entry, attr_timeout, nullptr);
  return 0;
}

int Session::ReplyNegative(uint64_t id, Timeout entry, int64_t cache_expires) {
  int result = 0;
  std::optional<Pending> p = TakeFor(id, JsAnswer::kEntry, &result);
  if (!p) return result;
  if (cache_expires > 0) cache_.PutNegative(p->key, p->name, entry, cache_expires);
  if (entry.sec == 0 && entry.nsec == 0) {
    Send(p->fd, p->unique, ENOENT, nullptr, 0);
  } else {
    fuse_entry_out out{};
    out.entry_valid = entry.sec;
    out.entry_valid_nsec = entry.nsec;
    Send(p->fd, p->unique, 0, &out, sizeof(out));
  }
  return 0;
}

int Session::ReplyAttr(uint64_t id, const fuse_attr& attr, Timeout attr_timeout, int64_t cache_expires) {
  int result = 0;
  std::optional<Pending> p = TakeFor(id, JsAnswer::kAttr, &result);
  if (!p) return result;
  if (cache_expires > 0) cache_.PutAttr(p->key, AttrRecord{attr, attr_timeout, cache_expires});
  fuse_attr_out out{};
  out.attr_valid = attr_timeout.sec;
  out.attr_valid_nsec = attr_timeout.nsec;
  out.attr = attr;
  Send(p->fd, p->unique, 0, &out, sizeof(out));
  return 0;
}

int Session::ReplyListing(uint64_t id, std::shared_ptr<Listing> listing, bool cache) {
  int result = 0;
  std::optional<Pending> p = TakeFor(id, JsAnswer::kListing, &result);
  if (!p) return result;
  listing->BuildIndex();
  std::shared_ptr<const Listing> shared = listing;
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    auto it = dirs_.find(p->fh);
    if (it != dirs_.end()) {
      if (it->second.listing) {
        shared = it->second.listing;  // offsets stay those of the listing the handle already read
      } else {
        it->second.listing = shared;
      }
    }
  }
  if (cache) cache_.PutListing(p->key, shared);
  SendListing(p->fd, p->unique, p->opcode == FUSE_READDIRPLUS, *shared, p->key, p->offset, p->size);
  return 0;
}

int Session::ReplyData(uint64_t id, const char* data, size_t size) {
  int result = 0;
  std::optional<Pending> p = TakeFor(id, JsAnswer::kData, &result);
  if (!p) return result;
  Send(p->fd, p->unique, 0, data, std::min<size_t>(size, p->size));
  return 0;
}

int Session::ReplyLink(uint64_t id, std::string target, int64_t cache_expires) {
  int result = 0;
  std::optional<Pending> p = TakeFor(id, JsAnswer::kLink, &result);
  if (!p) return result;
  if (target.size() > kLinkMax) {
    Send(p->fd, p->unique, ENAMETOOLONG, nullptr, 0);
    return 0;
  }
  Send(p->fd, p->unique, 0, target.data(), target.size());
  if (cache_expires > 0) cache_.PutLink(p->key, std::move(target), cache_expires);
  return 0;
}

int Session::ReplyXattr(uint64_t id, const char* data, size_t size) {
  int result = 0;
  std::optional<Pending> p = TakeFor(id, JsAnswer::kXattr, &result);
  if (!p) return result;
  SendXattr(p->fd, p->unique, p->size, data, size);
  return 0;
}

int Session::ReplyStatfs(uint64_t id, const fuse_kstatfs& st, int64_t cache_expires) {
  int result = 0;
  std::optional<Pending> p = TakeFor(id, JsAnswer::kStatfs, &result);
  if (!p) return result;
  if (cache_expires > 0) CacheStatfs(st, cache_expires);
  fuse_statfs_out out{};
  out.st = st;
  Send(p->fd, p->unique, 0, &out, sizeof(out));
  return 0;
}

}  // namespace strata_fuse
