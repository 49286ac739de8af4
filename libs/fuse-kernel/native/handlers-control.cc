// INTERRUPT (a request waiting in JavaScript is answered EINTR at once), and
// the protocol's own messages after INIT: a second INIT, DESTROY, NOTIFY_REPLY.
#include "session.h"

#include <errno.h>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

void Session::OnInterrupt(Request& r) {
  const fuse_interrupt_in in = Arg<fuse_interrupt_in>(r);
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
  Send(r.fd, r.h.unique, EAGAIN, nullptr, 0);
}

// INIT is answered once, by Negotiate, before any reader runs.
void Session::OnInit(Request& r) { Send(r.fd, r.h.unique, EPROTO, nullptr, 0); }

void Session::OnDestroy(Request& r) {
  Send(r.fd, r.h.unique, 0, nullptr, 0);
  End("destroy");
}

// The answer to a retrieve request: we send none.
void Session::OnNotifyReply(Request& r) {}

}  // namespace strata_fuse
