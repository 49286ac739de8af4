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
// Keys are JavaScript's node identities (normally the layer's st_ino);
// nodeids are ours, allocated from a counter and never reused, so a stale
// nodeid can never name a different file.
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
  std::vector<ListEntry> entries;
  std::unordered_map<std::string_view, uint32_t> index;  // views into entries[i].name
  uint64_t dot_ino = 0;
  uint64_t dotdot_ino = 0;
  Timeout entry_timeout;
  Timeout attr_timeout;
  int64_t expires = kNever;

  void BuildIndex();
};

struct XattrSet {
  std::vector<std::pair<std::string, std::string>> items;
  int64_t expires = kNever;
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
};

class Cache {
 public:
  Cache(uint64_t root_key, uint64_t limit);

  // ---- the kernel's side ----
  // The key a nodeid stands for (the root nodeid is always known).
  std::optional<uint64_t> KeyOf(uint64_t nodeid);
  // Hands a nodeid for key to the kernel: count one lookup. When seed is
  // given and the key has no attributes cached, they are cached too, so a
  // GETATTR that follows is answered here.
  uint64_t Reference(uint64_t key, const AttrRecord* seed = nullptr);
  // The kernel dropped n lookups of nodeid; keys whose count reached zero
  // are appended to dropped.
  void Forget(uint64_t nodeid, uint64_t n, std::vector<uint64_t>* dropped);

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
  void Drop(uint64_t key);

  CacheStats Stats();

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
    std::unordered_map<std::string, ChildRecord> children;
    std::vector<std::pair<uint64_t, std::string>> backrefs;  // entries in parents that name this key
    bool referenced = false;
    bool in_lru = false;
    uint64_t weight = 0;
    std::list<uint64_t>::iterator lru_pos;
  };
  struct KernelNode {
    uint64_t key;
    uint64_t nlookup;
  };

  Node& Touch(uint64_t key);  // the node of key, created; refreshes its place in the LRU
  void LruRemove(Node& node);
  void LruAdd(uint64_t key, Node& node);
  void Evict();
  void DropLocked(uint64_t key);
  static uint64_t WeightOf(const Node& node);

  std::mutex mu_;
  const uint64_t root_key_;
  const uint64_t limit_;
  uint64_t next_nodeid_ = FUSE_ROOT_ID + 1;
  std::unordered_map<uint64_t, KernelNode> kernel_;  // nodeid -> key
  std::unordered_map<uint64_t, uint64_t> nodeid_of_;  // key -> nodeid
  std::unordered_map<uint64_t, Node> nodes_;
  std::list<uint64_t> lru_;  // unreferenced keys, oldest first
  uint64_t lru_weight_ = 0;
  std::deque<std::pair<uint64_t, std::string>> negatives_;  // insertion order, bounded by limit_
  uint64_t evictions_ = 0;
};

}  // namespace strata_fuse
