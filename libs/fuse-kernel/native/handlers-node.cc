// LOOKUP, FORGET, GETATTR, READLINK, STATFS: a node's name, attributes and
// link target, from the native cache or from JavaScript.
#include "session.h"

#include <errno.h>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

void Session::OnLookup(Request& r) {
  if (r.name.empty()) {
    Send(r.fd, r.h.unique, EINVAL, nullptr, 0);
    return;
  }
  LookupAnswer a = cache_.Lookup(r.key, r.name, MonotonicNs(), options_.negative_timeout);
  if (a.kind == LookupAnswer::kPositive) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    AttrRecord seed{a.attr, a.attr_timeout, kNever};
    SendEntry(r.fd, r.h.unique, a.key, a.attr, a.entry_timeout, a.attr_timeout, &seed);
    return;
  }
  if (a.kind == LookupAnswer::kNegative) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    if (a.entry_timeout.sec == 0 && a.entry_timeout.nsec == 0) {
      Send(r.fd, r.h.unique, ENOENT, nullptr, 0);
    } else {
      fuse_entry_out out{};
      out.entry_valid = a.entry_timeout.sec;
      out.entry_valid_nsec = a.entry_timeout.nsec;
      Send(r.fd, r.h.unique, 0, &out, sizeof(out));
    }
    return;
  }
  Pending p = PendingFor(r);
  p.name = std::move(r.name);
  ToJs(std::move(p));
}

void Session::OnForget(Request& r) {
  const fuse_forget_in in = Arg<fuse_forget_in>(r);
  std::vector<uint64_t> dropped;
  cache_.Forget(r.h.nodeid, in.nlookup, &dropped);
  ForgetKeys(std::move(dropped));
}

void Session::OnBatchForget(Request& r) {
  const fuse_batch_forget_in in = Arg<fuse_batch_forget_in>(r);
  const char* p = r.arg + sizeof(in);
  size_t left = r.n - sizeof(in);
  std::vector<uint64_t> dropped;
  for (uint32_t i = 0; i < in.count && left >= sizeof(fuse_forget_one); i++) {
    fuse_forget_one one;
    std::memcpy(&one, p, sizeof(one));
    cache_.Forget(one.nodeid, one.nlookup, &dropped);
    p += sizeof(one);
    left -= sizeof(one);
  }
  ForgetKeys(std::move(dropped));
}

void Session::OnGetattr(Request& r) {
  std::optional<AttrRecord> rec = cache_.Attr(r.key, MonotonicNs());
  if (rec) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    fuse_attr_out out{};
    out.attr_valid = rec->attr_timeout.sec;
    out.attr_valid_nsec = rec->attr_timeout.nsec;
    out.attr = rec->attr;
    Send(r.fd, r.h.unique, 0, &out, sizeof(out));
    return;
  }
  ToJs(PendingFor(r));
}

void Session::OnReadlink(Request& r) {
  std::optional<std::string> target = cache_.Link(r.key, MonotonicNs());
  if (target) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    Send(r.fd, r.h.unique, 0, target->data(), target->size());
    return;
  }
  ToJs(PendingFor(r));
}

void Session::OnStatfs(Request& r) {
  {
    std::lock_guard<std::mutex> lock(statfs_mu_);
    if (statfs_ && statfs_->second > MonotonicNs()) {
      n_native_.fetch_add(1, std::memory_order_relaxed);
      fuse_statfs_out out{};
      out.st = statfs_->first;
      Send(r.fd, r.h.unique, 0, &out, sizeof(out));
      return;
    }
  }
  ToJs(PendingFor(r));
}

void Session::CacheStatfs(const fuse_kstatfs& st, int64_t expires) {
  std::lock_guard<std::mutex> lock(statfs_mu_);
  statfs_ = std::make_pair(st, expires);
}

}  // namespace strata_fuse
