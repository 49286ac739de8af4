// OPENDIR, RELEASEDIR, READDIR(PLUS): a directory handle keeps the listing it
// first read, so its offsets stay valid.
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

void Session::OnOpendir(Request& r) {
  n_native_.fetch_add(1, std::memory_order_relaxed);
  fuse_open_out out{};
  out.fh = next_fh_.fetch_add(1);
  if (options_.keep_cache) out.open_flags = FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE;
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    dirs_.emplace(out.fh, DirHandle{r.key, nullptr});
  }
  if (Send(r.fd, r.h.unique, 0, &out, sizeof(out)) != 0) {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    dirs_.erase(out.fh);
  }
}

void Session::OnReleasedir(Request& r) {
  n_native_.fetch_add(1, std::memory_order_relaxed);
  const fuse_release_in in = Arg<fuse_release_in>(r);
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    dirs_.erase(in.fh);
  }
  Send(r.fd, r.h.unique, 0, nullptr, 0);
}

void Session::OnReaddir(Request& r) {
  const fuse_read_in in = Arg<fuse_read_in>(r);
  std::shared_ptr<const Listing> listing;
  {
    std::lock_guard<std::mutex> lock(dirs_mu_);
    auto it = dirs_.find(in.fh);
    if (it != dirs_.end()) listing = it->second.listing;
  }
  if (!listing) {
    listing = cache_.GetListing(r.key, MonotonicNs());
    if (listing) {
      std::lock_guard<std::mutex> lock(dirs_mu_);
      auto it = dirs_.find(in.fh);
      if (it != dirs_.end() && !it->second.listing) it->second.listing = listing;
    }
  }
  if (listing) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    SendListing(r.fd, r.h.unique, r.h.opcode == FUSE_READDIRPLUS, *listing, r.key, in.offset, in.size);
    return;
  }
  Pending p = PendingFor(r);
  p.fh = in.fh;
  p.offset = in.offset;
  p.size = in.size;
  ToJs(std::move(p));
}

}  // namespace strata_fuse
