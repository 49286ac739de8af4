// INTERRUPT: a request waiting in JavaScript is answered EINTR at once.
#include "session.h"

#include <errno.h>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

void Session::OnInterrupt(int fd, const fuse_in_header& h, const char* arg, size_t n) {
  fuse_interrupt_in in{};
  if (!ReadArg(arg, n, &in)) return;
  n_interrupts_.fetch_add(1, std::memory_order_relaxed);
  std::optional<Pending> p;
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    auto it = pending_by_unique_.find(in.unique);
    if (it != pending_by_unique_.end()) {
      auto pit = pending_.find(it->second);
      if (pit != pending_.end()) {
        p = std::move(pit->second);
        pending_.erase(pit);
      }
      pending_by_unique_.erase(it);
    }
  }
  if (p) {
    // Waiting in JavaScript: answer EINTR now so the caller (even one being
    // killed) is not held; the late answer is dropped.
    Send(p->fd, p->unique, EINTR, nullptr, 0);
    return;
  }
  // Not (yet) ours to wait on: either answered already, or still being read
  // by another thread. EAGAIN asks the kernel to send the interrupt again if
  // the request is still outstanding.
  Send(fd, h.unique, EAGAIN, nullptr, 0);
}

}  // namespace strata_fuse
