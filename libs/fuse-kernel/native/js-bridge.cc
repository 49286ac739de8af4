// The way to JavaScript: a request the cache cannot answer waits here as a
// Pending (by our id and by the kernel's unique) until a reply takes it, or,
// with requestTimeoutMs, until its deadline: then the deadline thread answers
// EIO itself, since the JavaScript thread that should have may be the one
// that is stuck (a wedged handler, a busy loop).
#include "session.h"

#include <errno.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "protocol.h"

namespace strata_fuse {

void Session::ToJs(Pending&& p) {
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    p.id = next_id_++;
    if (options_.request_timeout_ms > 0) {
      p.deadline = MonotonicNs() + static_cast<int64_t>(options_.request_timeout_ms) * 1000000;
    }
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
  if (it == pending_.end()) {
    n_late_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  Pending p = std::move(it->second);
  pending_.erase(it);
  pending_by_unique_.erase(p.unique);
  return p;
}

bool Session::Waiting(uint64_t id) {
  std::lock_guard<std::mutex> lock(pending_mu_);
  return pending_.count(id) != 0;
}

void Session::StartDeadlines() {
  if (options_.request_timeout_ms == 0) return;
  deadline_thread_ = std::thread(&Session::DeadlineLoop, this);
}

void Session::StopDeadlines() {
  {
    std::lock_guard<std::mutex> lock(deadline_mu_);
    deadline_stop_ = true;
  }
  deadline_cv_.notify_all();
  if (deadline_thread_.joinable()) deadline_thread_.join();
}

// Scans what waits rather than keeping a queue of deadlines: the scan is as
// long as what waits (few), a queue as long as everything handed over in a
// whole timeout. A tick of an eighth of the timeout (5 ms to 250 ms) bounds
// how late past its deadline a request is answered.
void Session::DeadlineLoop() {
  const int64_t timeout_ns = static_cast<int64_t>(options_.request_timeout_ms) * 1000000;
  const auto tick = std::chrono::nanoseconds(std::clamp<int64_t>(timeout_ns / 8, 5000000, 250000000));
  std::unique_lock<std::mutex> wait(deadline_mu_);
  while (!deadline_cv_.wait_for(wait, tick, [this] { return deadline_stop_; })) {
    const int64_t now = MonotonicNs();
    std::vector<Pending> due;
    {
      std::lock_guard<std::mutex> lock(pending_mu_);
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.deadline != 0 && it->second.deadline <= now) {
          pending_by_unique_.erase(it->second.unique);
          due.push_back(std::move(it->second));
          it = pending_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (const Pending& p : due) {
      n_timeouts_.fetch_add(1, std::memory_order_relaxed);
      // An OPEN asked of JavaScript needs nothing from it: opened as if never asked.
      if (p.opcode == FUSE_OPEN) {
        AnswerOpen(p);
      } else {
        Send(p.fd, p.unique, EIO, nullptr, 0);
      }
    }
  }
}

void Session::ForgetKeys(std::vector<uint64_t>&& keys) {
  if (keys.empty() || !options_.notify_forget) return;
  Event ev;
  ev.kind = Event::kForget;
  ev.keys = std::move(keys);
  bridge_->Post(std::move(ev));
}

}  // namespace strata_fuse
