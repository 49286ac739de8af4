// The entries the holder keeps: id → meta, hard flag and the fds (each a dup of the agent's).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace holder {

struct Entry {
  std::string id;
  std::string meta;
  bool hard = false;
  std::vector<int> fds;
  // fds[0] is a /dev/fuse fd: the watchdog may answer for it and POLLERR means the connection ended.
  bool fuse = false;
  // The watchdog's own clone of the connection (FUSE_DEV_IOC_CLONE), -1 when not answering.
  int watch_fd = -1;
  bool watch_failed = false;
  uint64_t answered = 0;
};

class Registry {
 public:
  ~Registry();
  // Takes the fds (closed on refusal). Replaces an entry of the same id. 0 or an errno.
  int Put(const std::string& id, const std::string& meta, bool hard, std::vector<int>* fds);
  bool Drop(const std::string& id, const char* why);
  void DropAll(const char* why);
  std::map<std::string, Entry>& entries() { return entries_; }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  size_t total_fds() const { return total_fds_; }

 private:
  void Close(Entry* e);
  std::map<std::string, Entry> entries_;
  size_t total_fds_ = 0;
};

}  // namespace holder
