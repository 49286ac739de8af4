// What the session can say about itself: counters and the keys it may still name.
#include "session.h"

#include "protocol.h"

namespace strata_fuse {

std::vector<uint64_t> Session::LiveKeys() {
  std::vector<uint64_t> keys;
  cache_.LiveKeys(&keys);
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    for (const auto& [fh, d] : dirs_) {
      keys.push_back(d.key);
      if (d.listing) {
        for (const ListEntry& e : d.listing->entries) keys.push_back(e.key);
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    for (const auto& [id, p] : pending_) keys.push_back(p.key);
  }
  return keys;
}

SessionStats Session::Stats() {
  SessionStats s;
  s.cache = cache_.Stats();
  s.requests = n_requests_.load();
  s.native = n_native_.load();
  s.to_js = n_js_.load();
  s.interrupts = n_interrupts_.load();
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    s.pending = pending_.size();
  }
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    s.open_dirs = dirs_.size();
  }
  s.proto_minor = proto_minor_;
  s.max_pages = options_.max_pages;
  s.flags = flags_;
  s.passthrough = passthrough_;
  s.kernel_opens = kernel_opens_;
  s.opens = n_opens_.load();
  s.releases = n_releases_.load();
  s.pread_reads = n_pread_.load();
  s.pread_errors = n_pread_errors_.load();
  s.notices = notifier_.outstanding();
  s.timeouts = n_timeouts_.load();
  s.late_replies = n_late_.load();
  s.handed_over = n_handed_over_.load();
  s.resend_error = resend_error_;
  s.released = released_;
  return s;
}

}  // namespace strata_fuse
