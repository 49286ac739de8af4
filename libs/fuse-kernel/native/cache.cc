#include "cache.h"
#include "open-table.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/fuse.h>

namespace strata_fuse {

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void Listing::BuildIndex() {
  made = MonotonicNs();
  index.clear();
  index.reserve(entries.size());
  // A repeated name keeps its first entry, as the listing order shows it first.
  for (uint32_t i = 0; i < entries.size(); i++) index.emplace(std::string_view(entries[i].name), i);
}

std::shared_ptr<const FileData> FileData::Pread(int fd) {
  std::shared_ptr<FileData> d(new FileData());
  d->fd_ = fd;
  return d;
}

std::shared_ptr<const FileData> FileData::Runs(std::vector<int> fds, std::vector<Run> runs, uint64_t size) {
  std::shared_ptr<FileData> d(new FileData());
  d->runs_flag_ = true;
  d->fds_ = std::move(fds);
  d->runs_ = std::move(runs);
  d->size_ = size;
  return d;
}

std::shared_ptr<const FileData> FileData::Backing(int32_t id, std::shared_ptr<Connection> conn, uint64_t key) {
  std::shared_ptr<FileData> d(new FileData());
  d->backing_id_ = id;
  d->key_ = key;
  d->conn_ = std::move(conn);
  return d;
}

FileData::~FileData() {
  if (fd_ >= 0) close(fd_);
  for (int fd : fds_) close(fd);
  if (backing_id_ >= 0 && conn_) {
    // Under the connection's lock: Stop() must not close the fuse fd (and
    // let its number be reused) between the check and the ioctl.
    std::lock_guard<std::mutex> lock(conn_->mu);
    if (conn_->fd >= 0) {
      if (conn_->table) conn_->table->Unregistered(key_, backing_id_);
      uint32_t id = static_cast<uint32_t>(backing_id_);
      ioctl(conn_->fd, _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t), &id);  // FUSE_DEV_IOC_BACKING_CLOSE (7.40)
    }
  }
}

Cache::Cache(uint64_t root_key, uint64_t limit, uint64_t pread_limit)
    : root_key_(root_key), limit_(limit), pread_limit_(pread_limit < 1 ? 1 : pread_limit) {}

void Cache::PreadForget(Node& node) {
  if (!node.in_pread) return;
  pread_lru_.erase(node.pread_pos);
  pread_weight_ -= node.pread_weight;
  node.pread_weight = 0;
  node.in_pread = false;
}

void Cache::PreadNote(uint64_t key, Node& node) {
  if (!node.data || !node.data->pread()) {
    PreadForget(node);
    return;
  }
  if (node.in_pread) {
    pread_lru_.splice(pread_lru_.end(), pread_lru_, node.pread_pos);
    pread_weight_ -= node.pread_weight;
  } else {
    node.pread_pos = pread_lru_.insert(pread_lru_.end(), key);
    node.in_pread = true;
  }
  // The bound counts open files: a registration of runs holds one per store file.
  node.pread_weight = node.data->files_held();
  pread_weight_ += node.pread_weight;
}

void Cache::PreadBound(std::vector<std::shared_ptr<const FileData>>* evicted) {
  // The newest registration stays even if it alone is over the bound.
  while (pread_lru_.size() > 1 && pread_weight_ > pread_limit_) {
    auto it = nodes_.find(pread_lru_.front());
    if (it == nodes_.end()) {
      pread_lru_.pop_front();
      continue;
    }
    PreadForget(it->second);
    evicted->push_back(std::move(it->second.data));
    pread_evictions_++;
  }
}

std::optional<uint64_t> Cache::KeyOf(uint64_t nodeid) {
  if (nodeid == FUSE_ROOT_ID) return root_key_;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = kernel_.find(nodeid);
  if (it != kernel_.end()) return it->second.key;
  if (!adopting_ || nodeid == 0) return std::nullopt;
  // A nodeid the session before this one handed out (or one whose adopted
  // entry a FORGET of an older inode ended while the kernel had looked it up
  // again): it is in the kernel's hands, so it is referenced from now on.
  const uint64_t key = NodeidFor(nodeid);
  kernel_.emplace(nodeid, KernelNode{key, 1, true});
  nodeid_of_[key] = nodeid;
  auto node = nodes_.find(key);
  if (node != nodes_.end()) {
    if (node->second.in_lru) LruRemove(node->second);
    node->second.referenced = true;
  }
  return key;
}

uint64_t Cache::NodeidFor(uint64_t key) const {
  if (key == root_key_) return FUSE_ROOT_ID;
  if (key == FUSE_ROOT_ID) return root_key_;
  return key;
}

void Cache::Adopt(const std::vector<uint64_t>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  adopting_ = true;
  for (uint64_t key : keys) {
    const uint64_t nodeid = NodeidFor(key);
    if (nodeid == 0 || nodeid == FUSE_ROOT_ID || kernel_.count(nodeid) != 0) continue;
    kernel_.emplace(nodeid, KernelNode{key, 1, true});
    nodeid_of_[key] = nodeid;
  }
}

uint64_t Cache::Reference(uint64_t key, const AttrRecord* seed) {
  if (key == root_key_) return FUSE_ROOT_ID;  // the root is never counted: the kernel never forgets it
  std::lock_guard<std::mutex> lock(mu_);
  return ReferenceLocked(key, seed);
}

uint64_t Cache::ReferenceListed(uint64_t key, const AttrRecord* seed, int64_t listed_at) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(key);
  if (it != nodes_.end() && it->second.invalidated > listed_at) return 0;
  if (key == root_key_) return FUSE_ROOT_ID;
  return ReferenceLocked(key, seed);
}

std::optional<uint64_t> Cache::NodeidOf(uint64_t key) {
  if (key == root_key_) return FUSE_ROOT_ID;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodeid_of_.find(key);
  if (it == nodeid_of_.end()) return std::nullopt;
  return it->second;
}

uint64_t Cache::ReferenceLocked(uint64_t key, const AttrRecord* seed) {
  uint64_t nodeid;
  auto found = nodeid_of_.find(key);
  if (found != nodeid_of_.end()) {
    nodeid = found->second;
    kernel_[nodeid].nlookup++;
  } else {
    nodeid = NodeidFor(key);
    if (nodeid == 0) return 0;  // the one key no nodeid can name: handed out as a name without a node
    kernel_.emplace(nodeid, KernelNode{key, 1});
    nodeid_of_.emplace(key, nodeid);
  }
  auto it = nodes_.find(key);
  if (it == nodes_.end() && seed != nullptr) it = nodes_.try_emplace(key).first;
  if (it != nodes_.end()) {
    Node& node = it->second;
    if (node.in_lru) LruRemove(node);
    node.referenced = true;
    if (seed != nullptr && !node.attr) node.attr = *seed;
  }
  return nodeid;
}

void Cache::Forget(uint64_t nodeid, uint64_t n, std::vector<uint64_t>* dropped) {
  if (nodeid == FUSE_ROOT_ID) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = kernel_.find(nodeid);
  if (it == kernel_.end()) return;
  if (!it->second.adopted && it->second.nlookup > n) {
    it->second.nlookup -= n;
    return;
  }
  uint64_t key = it->second.key;
  kernel_.erase(it);
  nodeid_of_.erase(key);
  if (dropped != nullptr) dropped->push_back(key);
  auto node = nodes_.find(key);
  if (node != nodes_.end()) {
    node->second.referenced = false;
    LruAdd(key, node->second);
    Evict();
  }
}

LookupAnswer Cache::Lookup(uint64_t parent, const std::string& name, int64_t now, Timeout negative_timeout) {
  LookupAnswer answer;
  std::lock_guard<std::mutex> lock(mu_);
  auto pit = nodes_.find(parent);
  if (pit == nodes_.end()) return answer;
  Node& p = pit->second;
  auto cit = p.children.find(name);
  if (cit != p.children.end()) {
    const ChildRecord& c = cit->second;
    if (c.expires > now) {
      if (c.negative) {
        answer.kind = LookupAnswer::kNegative;
        answer.entry_timeout = c.entry_timeout;
        return answer;
      }
      auto child = nodes_.find(c.key);
      if (child != nodes_.end() && child->second.attr && child->second.attr->expires > now) {
        answer.kind = LookupAnswer::kPositive;
        answer.key = c.key;
        answer.attr = child->second.attr->attr;
        answer.entry_timeout = c.entry_timeout;
        answer.attr_timeout = child->second.attr->attr_timeout;
        return answer;
      }
    } else {
      p.children.erase(cit);
    }
  }
  if (p.listing && p.listing->expires > now) {
    const Listing& l = *p.listing;
    auto eit = l.index.find(std::string_view(name));
    if (eit == l.index.end()) {
      // A complete listing without the name is a negative answer.
      answer.kind = LookupAnswer::kNegative;
      answer.entry_timeout = negative_timeout;
      return answer;
    }
    const ListEntry& e = l.entries[eit->second];
    auto child = nodes_.find(e.key);
    if (child != nodes_.end() && child->second.attr && child->second.attr->expires > now) {
      answer.attr = child->second.attr->attr;
      answer.attr_timeout = child->second.attr->attr_timeout;
    } else if (e.has_attr && (child == nodes_.end() || child->second.invalidated <= l.made)) {
      answer.attr = e.attr;
      answer.attr_timeout = l.attr_timeout;
    } else {
      return answer;
    }
    answer.kind = LookupAnswer::kPositive;
    answer.key = e.key;
    answer.entry_timeout = l.entry_timeout;
  }
  return answer;
}

std::optional<AttrRecord> Cache::Attr(uint64_t key, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(key);
  if (it == nodes_.end() || !it->second.attr || it->second.attr->expires <= now) return std::nullopt;
  return it->second.attr;
}

std::shared_ptr<const Listing> Cache::GetListing(uint64_t key, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(key);
  if (it == nodes_.end() || !it->second.listing || it->second.listing->expires <= now) return nullptr;
  return it->second.listing;
}

std::optional<std::string> Cache::Link(uint64_t key, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(key);
  if (it == nodes_.end() || !it->second.link || it->second.link->second <= now) return std::nullopt;
  return it->second.link->first;
}

std::shared_ptr<const XattrSet> Cache::Xattrs(uint64_t key, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(key);
  if (it == nodes_.end() || !it->second.xattrs || it->second.xattrs->expires <= now) return nullptr;
  return it->second.xattrs;
}

Cache::Node& Cache::Touch(uint64_t key) {
  auto [it, inserted] = nodes_.try_emplace(key);
  Node& node = it->second;
  if (inserted) node.referenced = key == root_key_ || nodeid_of_.count(key) != 0;
  return node;
}

uint64_t Cache::WeightOf(const Node& node) {
  uint64_t w = 1 + node.children.size() + node.backrefs.size();
  if (node.listing) w += node.listing->entries.size();
  if (node.xattrs) w += node.xattrs->items.size();
  return w;
}

void Cache::LruRemove(Node& node) {
  if (!node.in_lru) return;
  lru_.erase(node.lru_pos);
  lru_weight_ -= node.weight;
  node.in_lru = false;
}

void Cache::LruAdd(uint64_t key, Node& node) {
  if (node.referenced) return;
  LruRemove(node);
  node.weight = WeightOf(node);
  node.lru_pos = lru_.insert(lru_.end(), key);
  node.in_lru = true;
  lru_weight_ += node.weight;
}

void Cache::Evict() {
  while (lru_weight_ > limit_ && !lru_.empty()) {
    DropLocked(lru_.front());
    evictions_++;
  }
}

void Cache::DropLocked(uint64_t key) {
  auto it = nodes_.find(key);
  if (it == nodes_.end()) return;
  Node& node = it->second;
  for (const auto& [parent, name] : node.backrefs) {
    auto pit = nodes_.find(parent);
    if (pit == nodes_.end()) continue;
    auto cit = pit->second.children.find(name);
    if (cit != pit->second.children.end() && !cit->second.negative && cit->second.key == key) {
      pit->second.children.erase(cit);
    }
  }
  LruRemove(node);
  PreadForget(node);
  nodes_.erase(it);
}

void Cache::PutEntry(uint64_t parent, const std::string& name, uint64_t key, Timeout entry_timeout, int64_t expires) {
  std::lock_guard<std::mutex> lock(mu_);
  Node& p = Touch(parent);
  p.children[name] = ChildRecord{false, key, entry_timeout, expires};
  Node& c = Touch(key);
  bool known = false;
  for (const auto& ref : c.backrefs) {
    if (ref.first == parent && ref.second == name) {
      known = true;
      break;
    }
  }
  if (!known) c.backrefs.emplace_back(parent, name);
  LruAdd(parent, p);
  LruAdd(key, c);
  Evict();
}

void Cache::PutNegative(uint64_t parent, const std::string& name, Timeout entry_timeout, int64_t expires) {
  std::lock_guard<std::mutex> lock(mu_);
  Node& p = Touch(parent);
  p.children[name] = ChildRecord{true, 0, entry_timeout, expires};
  negatives_.emplace_back(parent, name);
  LruAdd(parent, p);
  while (negatives_.size() > limit_) {
    auto [pk, nm] = std::move(negatives_.front());
    negatives_.pop_front();
    auto pit = nodes_.find(pk);
    if (pit == nodes_.end()) continue;
    auto cit = pit->second.children.find(nm);
    if (cit != pit->second.children.end() && cit->second.negative) pit->second.children.erase(cit);
  }
  Evict();
}

void Cache::PutAttr(uint64_t key, const AttrRecord& rec) {
  std::lock_guard<std::mutex> lock(mu_);
  Node& node = Touch(key);
  node.attr = rec;
  LruAdd(key, node);
  Evict();
}

void Cache::PutListing(uint64_t key, std::shared_ptr<const Listing> listing) {
  std::lock_guard<std::mutex> lock(mu_);
  Node& node = Touch(key);
  node.listing = std::move(listing);
  LruAdd(key, node);
  Evict();
}

void Cache::PutLink(uint64_t key, std::string target, int64_t expires) {
  std::lock_guard<std::mutex> lock(mu_);
  Node& node = Touch(key);
  node.link = std::make_pair(std::move(target), expires);
  LruAdd(key, node);
  Evict();
}

void Cache::PutXattrs(uint64_t key, std::shared_ptr<const XattrSet> xattrs) {
  std::lock_guard<std::mutex> lock(mu_);
  Node& node = Touch(key);
  node.xattrs = std::move(xattrs);
  LruAdd(key, node);
  Evict();
}

void Cache::Drop(uint64_t key) {
  std::lock_guard<std::mutex> lock(mu_);
  DropLocked(key);
}

std::shared_ptr<const FileData> Cache::Data(uint64_t key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(key);
  if (it == nodes_.end()) return nullptr;
  // Read now: the last pread registration to be let go.
  if (it->second.in_pread) pread_lru_.splice(pread_lru_.end(), pread_lru_, it->second.pread_pos);
  return it->second.data;
}

std::shared_ptr<const FileData> Cache::PutData(uint64_t key, std::shared_ptr<const FileData> data) {
  std::vector<std::shared_ptr<const FileData>> evicted;  // released after the lock (declared before it)
  std::lock_guard<std::mutex> lock(mu_);
  Node& node = Touch(key);
  std::shared_ptr<const FileData> old = std::move(node.data);
  node.data = std::move(data);
  PreadNote(key, node);
  LruAdd(key, node);
  Evict();
  PreadBound(&evicted);
  return old;
}

std::shared_ptr<const FileData> Cache::TakeData(uint64_t key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(key);
  if (it == nodes_.end()) return nullptr;
  PreadForget(it->second);
  return std::move(it->second.data);
}

std::vector<std::shared_ptr<const FileData>> Cache::TakeAllData() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<const FileData>> all;
  for (auto& [key, node] : nodes_) {
    node.in_pread = false;
    node.pread_weight = 0;
    if (node.data) all.push_back(std::move(node.data));
  }
  pread_lru_.clear();
  pread_weight_ = 0;
  return all;
}

std::vector<std::pair<uint64_t, int32_t>> Cache::Backings() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<uint64_t, int32_t>> all;
  for (const auto& [key, node] : nodes_) {
    if (node.data && node.data->backing_id() >= 0) all.emplace_back(key, node.data->backing_id());
  }
  return all;
}

void Cache::Invalidate(uint64_t key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(key);
  if (it == nodes_.end()) {
    // Nothing cached, but a listing of its parent may still carry its
    // attributes: remember when it changed (a weight-1 node in the LRU).
    it = nodes_.try_emplace(key).first;
    it->second.referenced = key == root_key_ || nodeid_of_.count(key) != 0;
  }
  Node& node = it->second;
  node.attr.reset();
  node.listing.reset();
  node.link.reset();
  node.xattrs.reset();
  node.invalidated = MonotonicNs();
  LruAdd(key, node);
  Evict();
}

void Cache::InvalidateEntry(uint64_t parent, const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto pit = nodes_.find(parent);
  if (pit == nodes_.end()) return;
  Node& p = pit->second;
  auto cit = p.children.find(name);
  if (cit != p.children.end()) {
    if (!cit->second.negative) {
      auto child = nodes_.find(cit->second.key);
      if (child != nodes_.end()) {
        auto& refs = child->second.backrefs;
        for (auto r = refs.begin(); r != refs.end(); ++r) {
          if (r->first == parent && r->second == name) {
            refs.erase(r);
            break;
          }
        }
      }
    }
    p.children.erase(cit);
  }
  p.listing.reset();  // it names (or lacks) name as it was
  LruAdd(parent, p);
}

CacheStats Cache::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  CacheStats s;
  s.nodes = kernel_.size();
  s.cached = nodes_.size();
  s.unreferenced = lru_.size();
  s.lru_weight = lru_weight_;
  for (const auto& [key, node] : nodes_) {
    for (const auto& [name, child] : node.children) s.negatives += child.negative ? 1 : 0;
    if (node.data) {
      s.file_data++;
      if (node.data->backing_id() >= 0) s.backings++;
    }
  }
  s.evictions = evictions_;
  s.pread_evictions = pread_evictions_;
  return s;
}

void Cache::LiveKeys(std::vector<uint64_t>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  out->push_back(root_key_);
  for (const auto& [nodeid, kn] : kernel_) out->push_back(kn.key);
  for (const auto& [key, node] : nodes_) {
    for (const auto& [name, c] : node.children) {
      if (!c.negative) out->push_back(c.key);
    }
    if (node.listing) {
      for (const ListEntry& e : node.listing->entries) out->push_back(e.key);
    }
  }
}

}  // namespace strata_fuse
