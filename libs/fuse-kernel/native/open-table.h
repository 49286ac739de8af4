// How each inode is open and which passthrough backing ids are registered,
// kept in a MAP_SHARED file so a successor learns it even after the session
// died by SIGKILL (the page cache outlives the process; no syscall on the
// hot path). The kernel takes an OPEN of an inode open through a backing
// file only as a passthrough open naming the same id, and no passthrough
// open of an inode with cached opens: a successor that guessed would have
// OPENs fail EIO for as long as the old files stay open.
//
// Layout (host byte order: written and read on one machine): a 64-byte
// header, then `capacity` records of 24 bytes. A record is in use when its
// key is not 0. Slots are handed out from an in-memory free list, so an
// update touches one record only, and each is ordered so that a process
// stopped between any two stores leaves a record that errs one way only:
// an open counted that the kernel never saw (the successor then answers
// like for a file still open, which the kernel accepts), never an open
// missing. What cannot be recorded (the table is full) sets the overflow
// flag: then a key without a record may be open cached, and its OPENs are
// never answered passthrough on this connection again.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace strata_fuse {

struct OpenTableHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t capacity;
  uint32_t generation;  // the session that keeps it (MountOptions::generation)
  uint32_t flags;       // kOpenTableOverflowed
  uint8_t reserved[40];
};
struct OpenTableRecord {
  uint64_t key;            // 0: free
  uint32_t cached;         // cached opens the kernel holds
  uint32_t passthrough;    // passthrough opens the kernel holds
  int32_t open_backing;    // the id they share (meaningful while passthrough > 0)
  int32_t registered;      // key's registered backing id; -1 none
};
static_assert(sizeof(OpenTableHeader) == 64, "open table header");
static_assert(sizeof(OpenTableRecord) == 24, "open table record");

constexpr uint64_t kOpenTableMagic = 0x31534e45504f5453ULL;  // "STOPENS1"
constexpr uint32_t kOpenTableVersion = 1;
constexpr uint32_t kOpenTableOverflowed = 1;
constexpr uint32_t kOpenTableMaxCapacity = 1u << 22;

// What a table says (read back by a successor): the same shape as a
// handover's files, plus whether some open went unrecorded.
struct OpenTableContents {
  struct Open {
    uint64_t key;
    uint32_t cached;
    uint32_t passthrough;
    int32_t backing_id;
  };
  std::vector<Open> opens;
  std::vector<std::pair<uint64_t, int32_t>> registered;
  uint32_t generation = 0;
  bool overflowed = false;
};

class OpenTable {
 public:
  ~OpenTable() { Unmap(); }

  // Reads the table at path. False with a reason when there is none or it
  // is damaged (then nothing of it may be trusted): every field is checked.
  static bool Read(const std::string& path, OpenTableContents* out, std::string* why) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      *why = path + ": " + std::strerror(errno);
      return false;
    }
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    OpenTableHeader h{};
    if (ok) ok = st.st_size >= static_cast<off_t>(sizeof(h)) && pread(fd, &h, sizeof(h), 0) == sizeof(h);
    if (!ok) {
      close(fd);
      *why = path + ": not a regular file of at least a header";
      return false;
    }
    if (h.magic != kOpenTableMagic || h.version != kOpenTableVersion) {
      close(fd);
      *why = path + ": not an open table of version " + std::to_string(kOpenTableVersion);
      return false;
    }
    const uint64_t need = sizeof(h) + static_cast<uint64_t>(h.capacity) * sizeof(OpenTableRecord);
    if (h.capacity == 0 || h.capacity > kOpenTableMaxCapacity || static_cast<uint64_t>(st.st_size) < need ||
        (h.flags & ~kOpenTableOverflowed) != 0) {
      close(fd);
      *why = path + ": damaged header (capacity " + std::to_string(h.capacity) + " in a file of " + std::to_string(st.st_size) +
             " bytes, flags " + std::to_string(h.flags) + ")";
      return false;
    }
    void* map = mmap(nullptr, need, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
      *why = path + ": mmap: " + std::strerror(errno);
      return false;
    }
    const auto* recs = reinterpret_cast<const OpenTableRecord*>(static_cast<const char*>(map) + sizeof(h));
    std::unordered_set<uint64_t> keys;
    std::unordered_map<int32_t, uint64_t> owner;  // a backing id belongs to one key
    auto own = [&](int32_t id, uint64_t key) {
      auto [it, added] = owner.emplace(id, key);
      return added || it->second == key;
    };
    bool damaged = false;
    for (uint32_t i = 0; i < h.capacity && !damaged; i++) {
      OpenTableRecord r;
      std::memcpy(&r, &recs[i], sizeof(r));
      if (r.key == 0) continue;
      if (!keys.insert(r.key).second || r.cached > INT32_MAX || r.passthrough > INT32_MAX ||
          (r.passthrough > 0 && r.open_backing <= 0) || (r.registered != -1 && r.registered <= 0)) {
        damaged = true;
        *why = path + ": record " + std::to_string(i) + " is damaged";
        break;
      }
      // Stopped between two stores, a record may keep a stale id beside no passthrough opens: it says nothing then.
      int32_t open_id = r.passthrough > 0 ? r.open_backing : -1;
      if ((open_id > 0 && !own(open_id, r.key)) || (r.registered > 0 && !own(r.registered, r.key))) {
        damaged = true;
        *why = path + ": backing id of record " + std::to_string(i) + " is another key's too";
        break;
      }
      if (r.cached > 0 || r.passthrough > 0) out->opens.push_back({r.key, r.cached, r.passthrough, open_id});
      if (r.registered > 0) out->registered.emplace_back(r.key, r.registered);
    }
    munmap(map, need);
    if (damaged) {
      out->opens.clear();
      out->registered.clear();
      return false;
    }
    out->generation = h.generation;
    out->overflowed = (h.flags & kOpenTableOverflowed) != 0;
    return true;
  }

  // Writes a new table holding contents at path (beside it first, then
  // renamed over: a crash meanwhile leaves the old one whole) and maps it.
  bool Create(const std::string& path, uint32_t capacity, uint32_t generation, const OpenTableContents& contents,
              std::string* why) {
    capacity = std::max<uint32_t>(1, std::min(capacity, kOpenTableMaxCapacity));
    const std::string tmp = path + ".new";
    int fd = open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      *why = tmp + ": " + std::strerror(errno);
      return false;
    }
    const size_t size = sizeof(OpenTableHeader) + static_cast<size_t>(capacity) * sizeof(OpenTableRecord);
    void* map = ftruncate(fd, static_cast<off_t>(size)) == 0 ? mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                                                             : MAP_FAILED;
    close(fd);
    if (map == MAP_FAILED) {
      *why = tmp + ": " + std::strerror(errno);
      unlink(tmp.c_str());
      return false;
    }
    std::lock_guard<std::mutex> lock(mu_);
    Unmap();
    map_ = map;
    size_ = size;
    capacity_ = capacity;
    header_ = static_cast<OpenTableHeader*>(map);
    recs_ = reinterpret_cast<OpenTableRecord*>(static_cast<char*>(map) + sizeof(OpenTableHeader));
    slot_.clear();
    free_.clear();
    for (uint32_t i = capacity; i > 0; i--) free_.push_back(i - 1);
    header_->capacity = capacity;
    header_->generation = generation;
    header_->flags = contents.overflowed ? kOpenTableOverflowed : 0;
    overflowed_.store(contents.overflowed, std::memory_order_relaxed);
    for (const auto& o : contents.opens) {
      int32_t s = SlotLocked(o.key);
      if (s < 0) {
        header_->flags |= kOpenTableOverflowed;
        continue;
      }
      recs_[s].cached = o.cached;
      recs_[s].passthrough = o.passthrough;
      recs_[s].open_backing = o.backing_id;
    }
    for (const auto& [key, id] : contents.registered) {
      int32_t s = SlotLocked(key);
      if (s >= 0) recs_[s].registered = id;
    }
    header_->version = kOpenTableVersion;
    header_->magic = kOpenTableMagic;  // last: a table is one once it is whole
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      *why = path + ": rename: " + std::strerror(errno);
      unlink(tmp.c_str());
      Unmap();
      return false;
    }
    return true;
  }

  bool active() const { return map_ != nullptr; }
  bool overflowed() const { return overflowed_.load(std::memory_order_relaxed); }

  // Key's opens now (absolute counts, id their passthrough opens share).
  // False when key has no record and none is free: then the open is not
  // recorded and the table says so (overflow).
  bool SetOpens(uint64_t key, uint32_t cached, uint32_t passthrough, int32_t backing) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!map_) return true;
    int32_t s = cached > 0 || passthrough > 0 ? SlotLocked(key) : Find(key);
    if (s < 0) {
      if (cached > 0 || passthrough > 0) MarkOverflow();
      return cached == 0 && passthrough == 0;
    }
    OpenTableRecord& r = recs_[s];
    if (passthrough > 0) {
      Store(&r.open_backing, backing);  // before the count that makes it meaningful
      Store(&r.cached, cached);
      Store(&r.passthrough, passthrough);
    } else {
      Store(&r.passthrough, 0u);
      Store(&r.cached, cached);
      Store(&r.open_backing, -1);
    }
    FreeIfIdle(key, s);
    return true;
  }

  // Key's registration (-1: none). A new id is recorded after the kernel
  // handed it out, a given-back one before it is closed: a record never
  // names an id the kernel no longer has.
  void SetRegistered(uint64_t key, int32_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!map_) return;
    int32_t s = id > 0 ? SlotLocked(key) : Find(key);
    if (s < 0) return;  // unrecorded: a successor leaves the id to the connection's end
    Store(&recs_[s].registered, id);
    FreeIfIdle(key, s);
  }
  // Id given back: cleared where key's registration is still that id.
  void Unregistered(uint64_t key, int32_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!map_) return;
    int32_t s = Find(key);
    if (s < 0 || recs_[s].registered != id) return;
    Store(&recs_[s].registered, -1);
    FreeIfIdle(key, s);
  }

  uint32_t records() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<uint32_t>(slot_.size());
  }
  uint32_t capacity() const { return capacity_; }

 private:
  template <typename T>
  static void Store(T* p, T v) {
    // The stores of one thread are seen in order by the page cache when it
    // is killed; the compiler must not reorder or merge them either.
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
  }
  int32_t Find(uint64_t key) {
    auto it = slot_.find(key);
    return it == slot_.end() ? -1 : static_cast<int32_t>(it->second);
  }
  int32_t SlotLocked(uint64_t key) {
    int32_t s = Find(key);
    if (s >= 0 || free_.empty()) return s;
    uint32_t i = free_.back();
    free_.pop_back();
    OpenTableRecord& r = recs_[i];
    Store(&r.cached, 0u);
    Store(&r.passthrough, 0u);
    Store(&r.open_backing, -1);
    Store(&r.registered, -1);
    Store(&r.key, key);  // last: a record is key's once it says nothing else
    slot_.emplace(key, i);
    return static_cast<int32_t>(i);
  }
  void FreeIfIdle(uint64_t key, int32_t s) {
    const OpenTableRecord& r = recs_[s];
    if (r.cached != 0 || r.passthrough != 0 || r.registered != -1) return;
    Store(&recs_[s].key, uint64_t{0});
    slot_.erase(key);
    free_.push_back(static_cast<uint32_t>(s));
  }
  void MarkOverflow() {
    overflowed_.store(true, std::memory_order_relaxed);
    Store(&header_->flags, header_->flags | kOpenTableOverflowed);
  }
  void Unmap() {
    if (map_) munmap(map_, size_);
    map_ = nullptr;
    header_ = nullptr;
    recs_ = nullptr;
  }

  std::mutex mu_;  // a leaf: nothing else is locked while it is held
  void* map_ = nullptr;
  size_t size_ = 0;
  uint32_t capacity_ = 0;
  OpenTableHeader* header_ = nullptr;
  OpenTableRecord* recs_ = nullptr;
  std::unordered_map<uint64_t, uint32_t> slot_;
  std::vector<uint32_t> free_;
  std::atomic<bool> overflowed_{false};
};

}  // namespace strata_fuse
