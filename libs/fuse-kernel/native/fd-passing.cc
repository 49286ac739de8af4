// Passing file descriptors over unix sockets (SCM_RIGHTS): to the fd holder and to systemd's store.
#include <napi.h>

namespace strata_fuse {

void RegisterFdPassing(Napi::Env env, Napi::Object exports) {}

}  // namespace strata_fuse
