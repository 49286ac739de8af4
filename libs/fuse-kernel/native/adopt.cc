// Adopting a connection another process mounted (issue 27: takeover).
#include "session.h"
