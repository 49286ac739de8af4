// The per-mount native cache and the kernel's node table.
//
// Two maps with different owners:
//  * the node table (nodeid <-> key, lookup count) mirrors what the kernel
//    holds: an entry exists while the kernel references the nodeid, and
//    FORGET removes it;
//  * the cache (key -> attr, listing, link target, xattrs, named children)
//    holds what JavaScript told us. A key the kernel references stays; an
//    unreferenced one (forgotten, or filled ahead by JavaScript) sits in an
//    LRU bounded by weight, so neither prefetch nor a million lookups can
//    grow it without bound.
// Keys are JavaScript's node identities (normally the layer's st_ino).
// A nodeid is a function of its key (NodeidOf: the key itself, the root's
// and FUSE_ROOT_ID's swapped), not a counter: a successor that takes the
// connection over after a crash (issue 27) knows what every nodeid the
// kernel holds stands for without a table the dead process kept. A nodeid
// is never reused for another file while the kernel holds it, since keys
// are not (JavaScript hands out a key per node).
#pragma once

#include <linux/fuse.h>

#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <utility>
#include <vector>

namespace strata_fuse {

constexpr int64_t kNever = INT64_MAX;  // expiry of entries that last until evicted or forgotten

int64_t MonotonicNs();

// A kernel timeout (entry_valid/attr_valid) as the protocol spells it.
struct Timeout {
  uint64_t sec = 0;
  uint32_t nsec = 0;
};

struct AttrRecord {
  fuse_attr attr{};
  Timeout attr_timeout;
  int64_t expires = kNever;
};

struct ListEntry {
  std::string name;
  uint64_t key = 0;
  uint64_t ino = 0;  // st_ino for the dirent
  uint32_t type = 0;  // DT_*
  bool has_attr = false;
  fuse_attr attr{};
};

// A whole directory listing, immutable once built (open directory handles
// share it with the cache).
struct Listing {
  int64_t made = 0;  // MonotonicNs() when built: an entry invalidated later keeps none of its attributes
  std::vector<ListEntry> entries;
  std::unordered_map<std::string_view, uint32_t> index;  // views into entries[i].name
  uint64_t dot_ino = 0;
  uint64_t dotdot_ino = 0;
  Timeout entry_timeout;
  Timeout attr_timeout;
  int64_t expires = kNever;

  void BuildIndex();  // also stamps made
};

struct XattrSet {
  std::vector<std::pair<std::string, std::string>> items;
  int64_t expires = kNever;
};

// Where ino's data comes from without JavaScript: a passthrough backing id
// the kernel holds, or an open file (our own dup) answered by pread(2). The
// destructor gives either back, so a registration ends with the last user:
// the cache node (eviction, drop), or a reader still in its pread.
class OpenTable;

class FileData {
 public:
  // Closes backing ids on the connection; fd -1 once the session has stopped.
  struct Connection {
    std::mutex mu;
    int fd = -1;
    // Where registrations are kept for a successor (open-table.h): an id
    // given back leaves it before the kernel closes it.
    std::shared_ptr<OpenTable> table;
  };
  static std::shared_ptr<const FileData> Pread(int fd);
  // A file made of runs over several open files (our own dups, owned from
  // here on) and holes: runs sorted, contiguous from 0 to size (checked by
  // the caller). file -1 is a hole (zeros).
  struct Run {
    uint64_t offset;       // in ino's bytes
    uint64_t length;
    int32_t file;          // index into fds, -1 for a hole
    uint64_t file_offset;  // in fds[file]
  };
  static std::shared_ptr<const FileData> Runs(std::vector<int> fds, std::vector<Run> runs, uint64_t size);
  static std::shared_ptr<const FileData> Backing(int32_t id, std::shared_ptr<Connection> conn, uint64_t key);
  ~FileData();
  FileData(const FileData&) = delete;
  FileData& operator=(const FileData&) = delete;

  int fd() const { return fd_; }  // -1 for passthrough and runs
  bool has_runs() const { return runs_flag_; }
  const std::vector<int>& fds() const { return fds_; }
  const std::vector<Run>& runs() const { return runs_; }
  uint64_t size() const { return size_; }
  // Served by pread on the reader threads (a file or runs)?
  bool pread() const { return fd_ >= 0 || runs_flag_; }
  // Open files held: what the preadFiles bound counts.
  uint64_t files_held() const { return fd_ >= 0 ? 1 : fds_.size(); }
  int32_t backing_id() const { return backing_id_; }  // -1 for pread

 private:
  FileData() = default;
  int fd_ = -1;
  int32_t backing_id_ = -1;
  bool runs_flag_ = false;
  std::vector<int> fds_;
  std::vector<Run> runs_;
  uint64_t size_ = 0;
  uint64_t key_ = 0;
  std::shared_ptr<Connection> conn_;
};

struct LookupAnswer {
  enum Kind { kMiss, kPositive, kNegative } kind = kMiss;
  uint64_t key = 0;
  fuse_attr attr{};
  Timeout entry_timeout;
  Timeout attr_timeout;
};

struct CacheStats {
  uint64_t nodes = 0;       // nodeids the kernel holds
  uint64_t cached = 0;      // keys with cached data
  uint64_t unreferenced = 0;  // of those, keys in the LRU
  uint64_t lru_weight = 0;
  uint64_t negatives = 0;
  uint64_t evictions = 0;
  uint64_t file_data = 0;  // keys with a FileData
  uint64_t backings = 0;   // of those, passthrough ones
  uint64_t pread_evictions = 0;  // pread registrations let go to stay within the bound on their fds
};

class Cache {
 public:
  // limit: weight of unreferenced nodes kept; pread_limit: pread
  // registrations kept (each holds an fd), the least recently read let go.
  Cache(uint64_t root_key, uint64_t limit, uint64_t pread_limit);

  // ---- the kernel's side ----
  // The key a nodeid stands for (the root nodeid is always known).
  std::optional<uint64_t> KeyOf(uint64_t nodeid);
  // Hands a nodeid for key to the kernel: count one lookup. When seed is
  // given and the key has no attributes cached, they are cached too, so a
  // GETATTR that follows is answered here.
  uint64_t Reference(uint64_t key, const AttrRecord* seed = nullptr);
  // Reference() for an entry of a listing made at listed_at, unless key was
  // invalidated since (then 0 and nothing counted: the entry goes out without
  // its stale attributes).
  uint64_t ReferenceListed(uint64_t key, const AttrRecord* seed, int64_t listed_at);
  // The nodeid the kernel holds for key, if any.
  std::optional<uint64_t> NodeidOf(uint64_t key);
  // The kernel dropped n lookups of nodeid; keys whose count reached zero
  // are appended to dropped.
  void Forget(uint64_t nodeid, uint64_t n, std::vector<uint64_t>* dropped);

  // ---- takeover (issue 27) ----
  // The nodeid key goes to the kernel as (0: none can name it, the one key
  // the swap with the root leaves out). Its own inverse.
  uint64_t NodeidFor(uint64_t key) const;
  // This cache serves a connection an earlier session made: keys the kernel
  // may hold are referenced until their first FORGET, and a nodeid not in
  // the table is taken for the key it stands for rather than refused
  // (whatever the old session handed out, journalled or not).
  void Adopt(const std::vector<uint64_t>& keys);

  // ---- answers ----
  LookupAnswer Lookup(uint64_t parent, const std::string& name, int64_t now, Timeout negative_timeout);
  std::optional<AttrRecord> Attr(uint64_t key, int64_t now);
  std::shared_ptr<const Listing> GetListing(uint64_t key, int64_t now);
  std::optional<std::string> Link(uint64_t key, int64_t now);
  std::shared_ptr<const XattrSet> Xattrs(uint64_t key, int64_t now);

  // ---- fills (from JavaScript) ----
  void PutEntry(uint64_t parent, const std::string& name, uint64_t key, Timeout entry_timeout, int64_t expires);
  void PutNegative(uint64_t parent, const std::string& name, Timeout entry_timeout, int64_t expires);
  void PutAttr(uint64_t key, const AttrRecord& rec);
  void PutListing(uint64_t key, std::shared_ptr<const Listing> listing);
  void PutLink(uint64_t key, std::string target, int64_t expires);
  void PutXattrs(uint64_t key, std::shared_ptr<const XattrSet> xattrs);
  void Drop(uint64_t key);  // everything about key, its file data included

  // ---- file data ----
  std::shared_ptr<const FileData> Data(uint64_t key);
  // Replaces key's file data; the old one is handed back (released by the caller, outside the lock).
  std::shared_ptr<const FileData> PutData(uint64_t key, std::shared_ptr<const FileData> data);
  std::shared_ptr<const FileData> TakeData(uint64_t key);
  // Every key's file data (the session is stopping).
  std::vector<std::shared_ptr<const FileData>> TakeAllData();
  // Keys whose registration is passthrough, with the backing id.
  std::vector<std::pair<uint64_t, int32_t>> Backings();

  // ---- invalidation (LIVE layers) ----
  // key changed: its attributes, listing, link and xattrs go, and listings
  // made before now stop vouching for its attributes. File data stays (it is
  // replaced by PutData, not by a change notice).
  void Invalidate(uint64_t key);
  // parent/name changed: the entry (positive or negative) and parent's
  // listing go.
  void InvalidateEntry(uint64_t parent, const std::string& name);

  CacheStats Stats();

  // Every key something here can still hand to the kernel or name in a
  // request: held by the kernel, a positive child entry, an entry of a
  // cached listing (appended to out; duplicates possible).
  void LiveKeys(std::vector<uint64_t>* out);

 private:
  struct ChildRecord {
    bool negative = false;
    uint64_t key = 0;
    Timeout entry_timeout;
    int64_t expires = kNever;
  };
  struct Node {
    std::optional<AttrRecord> attr;
    std::shared_ptr<const Listing> listing;
    std::optional<std::pair<std::string, int64_t>> link;
    std::shared_ptr<const XattrSet> xattrs;
    std::shared_ptr<const FileData> data;
    int64_t invalidated = 0;  // MonotonicNs() of the last Invalidate
    std::unordered_map<std::string, ChildRecord> children;
    std::vector<std::pair<uint64_t, std::string>> backrefs;  // entries in parents that name this key
    bool referenced = false;
    bool in_lru = false;
    uint64_t weight = 0;
    std::list<uint64_t>::iterator lru_pos;
    bool in_pread = false;  // data is a pread registration, in pread_lru_
    uint64_t pread_weight = 0;  // its files_held() while in pread_lru_
    std::list<uint64_t>::iterator pread_pos;
  };
  struct KernelNode {
    uint64_t key;
    uint64_t nlookup;
    // Taken over from an earlier session: its lookup count is unknown, so
    // the first FORGET (which carries the kernel's whole count) ends it.
    bool adopted = false;
  };

  Node& Touch(uint64_t key);  // the node of key, created; refreshes its place in the LRU
  void LruRemove(Node& node);
  void LruAdd(uint64_t key, Node& node);
  void Evict();
  void DropLocked(uint64_t key);
  // Keeps pread_lru_ in step with node.data (a pread one goes to the back).
  void PreadNote(uint64_t key, Node& node);
  void PreadForget(Node& node);
  // The least recently read pread registrations past pread_limit_, taken out.
  void PreadBound(std::vector<std::shared_ptr<const FileData>>* evicted);
  uint64_t ReferenceLocked(uint64_t key, const AttrRecord* seed);
  static uint64_t WeightOf(const Node& node);

  std::mutex mu_;
  const uint64_t root_key_;
  const uint64_t limit_;
  bool adopting_ = false;
  std::unordered_map<uint64_t, KernelNode> kernel_;  // nodeid -> key
  std::unordered_map<uint64_t, uint64_t> nodeid_of_;  // key -> nodeid
  std::unordered_map<uint64_t, Node> nodes_;
  std::list<uint64_t> lru_;  // unreferenced keys, oldest first
  uint64_t lru_weight_ = 0;
  std::deque<std::pair<uint64_t, std::string>> negatives_;  // insertion order, bounded by limit_
  uint64_t evictions_ = 0;
  // pread registrations, least recently read first: each holds an fd of this
  // process, so they are bounded whether or not the kernel holds the node.
  std::list<uint64_t> pread_lru_;
  const uint64_t pread_limit_;
  uint64_t pread_weight_ = 0;  // open files held by the registrations in pread_lru_
  uint64_t pread_evictions_ = 0;
};

}  // namespace strata_fuse
