// The watchdog: while no agent heartbeats, the holder answers every FUSE request of its
// non-hard entries with EIO itself, so a reader of a stopped or dead agent's mount fails
// within the bound instead of waiting forever.
//
// It serves through a clone of its own (FUSE_DEV_IOC_CLONE on a fresh /dev/fuse open): the
// held fds share their open file with the agent's, so O_NONBLOCK on them would change the
// agent's reads; the clone is the holder's alone. Requests already read by the agent sit in
// its fuse_dev's processing queue: FUSE_NOTIFY_RESEND (7.40) moves every fuse_dev's back
// to the pending queue, where the clone reads them (unique with bit 63 set, echoed as is).
#pragma once
#include <cstdint>

#include "registry.h"

namespace holder {

class Watchdog {
 public:
  Watchdog();
  ~Watchdog();
  bool active() const { return active_; }
  // Starts answering (why: "stopped" or "absent"); then Sync attaches entries put meanwhile.
  void Start(Registry* registry, const char* why, int64_t silentMs);
  void Stop(Registry* registry, const char* why);
  void Sync(Registry* registry);
  // The clone of e is readable (or in error): answer what is queued, bounded per call.
  // False when the connection is gone (the caller drops the entry).
  bool Serve(Entry* e);

 private:
  bool Attach(Entry* e);
  bool active_ = false;
  int64_t started_ms_ = 0;
  uint64_t answered_ = 0;
  // FORGETs read while answering: lookups the agent will never hear were dropped (its nodes stay referenced).
  uint64_t forgets_ = 0;
  char* buffer_ = nullptr;
  size_t buffer_size_ = 0;
};

}  // namespace holder
