// An event of the session (a request for JavaScript, forgotten inos, a
// release, an open, a written notice, the end) as a JavaScript object.
#pragma once

#include <napi.h>

#include "session.h"

namespace strata_fuse {

Napi::Object EventToJs(Napi::Env env, const Event& ev);

}  // namespace strata_fuse
