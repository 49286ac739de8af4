// One request read from /dev/fuse, to its handler: the opcode's row (opcodes.h)
// says how to decode it, whether its node is resolved first, and who answers.
#include "session.h"

#include <errno.h>

#include <cstring>

#include "protocol.h"

namespace strata_fuse {

void Session::Handle(int fd, char* buf, size_t n) {
  if (n < sizeof(fuse_in_header)) return;
  fuse_in_header h;
  std::memcpy(&h, buf, sizeof(h));
  if (h.len != n) {
    Send(fd, h.unique, EIO, nullptr, 0);
    return;
  }
  const Opcode& op = OpcodeOf(h.opcode);
  if (op.handler == nullptr) {
    n_native_.fetch_add(1, std::memory_order_relaxed);
    Send(fd, h.unique, op.refuse, nullptr, 0);
    return;
  }
  Request r{fd, h, buf + sizeof(h), n - sizeof(h), 0, {}, buf};
  if (r.n < op.in_size || (op.has_name && !ReadName(r.arg + op.in_size, r.n - op.in_size, &r.name))) {
    if (op.reply) Send(fd, h.unique, EINVAL, nullptr, 0);
    return;
  }
  if (op.resolve) {
    std::optional<uint64_t> key = cache_.KeyOf(h.nodeid);
    if (!key) {
      Send(fd, h.unique, ESTALE, nullptr, 0);
      return;
    }
    r.key = *key;
  }
  (this->*op.handler)(r);
}

}  // namespace strata_fuse
