#include "registry.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include "log.h"
#include "packet-io.h"
#include "protocol.h"

namespace holder {

static bool IsFuseDevice(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 10 && minor(st.st_rdev) == 229;
}

Registry::~Registry() { DropAll("exit"); }

void Registry::Close(Entry* e) {
  if (e->watch_fd >= 0) close(e->watch_fd);
  e->watch_fd = -1;
  total_fds_ -= e->fds.size();
  CloseAll(&e->fds);
}

int Registry::Put(const std::string& id, const std::string& meta, bool hard, std::vector<int>* fds) {
  auto old = entries_.find(id);
  size_t replaced = old == entries_.end() ? 0 : old->second.fds.size();
  int err = 0;
  if (id.empty() || fds->empty() || fds->size() > kMaxFdsPerEntry) err = EINVAL;
  else if (old == entries_.end() && entries_.size() >= kMaxEntries) err = ENOSPC;
  else if (total_fds_ - replaced + fds->size() > kMaxTotalFds) err = EMFILE;
  if (err != 0) {
    CloseAll(fds);
    return err;
  }
  if (old != entries_.end()) {
    Close(&old->second);
    entries_.erase(old);
  }
  Entry e;
  e.id = id;
  e.meta = meta;
  e.hard = hard;
  e.fds.swap(*fds);
  e.fuse = IsFuseDevice(e.fds[0]);
  total_fds_ += e.fds.size();
  LogLine("holder.put").Str("id", id).Num("fds", static_cast<int64_t>(e.fds.size())).Bool("hard", hard).Bool("fuse", e.fuse).Bool("replaced", replaced > 0);
  entries_.emplace(id, std::move(e));
  return 0;
}

bool Registry::Drop(const std::string& id, const char* why) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  LogLine("holder.drop").Str("id", id).Str("why", why).Num("answered", static_cast<int64_t>(it->second.answered));
  Close(&it->second);
  entries_.erase(it);
  return true;
}

void Registry::DropAll(const char* why) {
  while (!entries_.empty()) Drop(entries_.begin()->first, why);
}

}  // namespace holder
