// The way to JavaScript: a request the cache cannot answer waits here as a
// Pending (by our id and by the kernel's unique) until a reply takes it.
#include "session.h"

#include <utility>

#include "protocol.h"

namespace strata_fuse {

void Session::ToJs(Pending&& p) {
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    p.id = next_id_++;
    pending_by_unique_[p.unique] = p.id;
    pending_.emplace(p.id, p);
  }
  n_js_.fetch_add(1, std::memory_order_relaxed);
  Event ev;
  ev.kind = Event::kRequest;
  ev.request = std::move(p);
  bridge_->Post(std::move(ev));
}

std::optional<Pending> Session::Take(uint64_t id) {
  std::lock_guard<std::mutex> lock(pending_mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return std::nullopt;
  Pending p = std::move(it->second);
  pending_.erase(it);
  pending_by_unique_.erase(p.unique);
  return p;
}

void Session::ForgetKeys(std::vector<uint64_t>&& keys) {
  if (keys.empty() || !options_.notify_forget) return;
  Event ev;
  ev.kind = Event::kForget;
  ev.keys = std::move(keys);
  bridge_->Post(std::move(ev));
}

}  // namespace strata_fuse
