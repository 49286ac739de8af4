// Parsing of what src/wire.ts packs (see packed.h).
#include "packed.h"

#include <linux/fuse.h>

#include <cstring>
#include <string>
#include <utility>

namespace strata_fuse {

namespace {

constexpr size_t kListingHeader = 24;
constexpr size_t kListingEntryHead = 24;

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

bool ValidName(const char* p, size_t n) {
  if (n == 0 || n > kNameMax) return false;
  return std::memchr(p, '/', n) == nullptr && std::memchr(p, 0, n) == nullptr;
}

// Parses a listing packed by wire.ts (encodeListing). Null when malformed.
std::shared_ptr<Listing> ParseListing(const uint8_t* p, size_t n) {
  if (n < kListingHeader) return nullptr;
  uint32_t count = Load<uint32_t>(p);
  auto listing = std::make_shared<Listing>();
  listing->dot_ino = Load<uint64_t>(p + 8);
  listing->dotdot_ino = Load<uint64_t>(p + 16);
  // Each entry takes at least its head and one name byte: a count beyond
  // what the buffer can hold is corrupt, not an allocation to attempt.
  if (count > (n - kListingHeader) / (kListingEntryHead + 1)) return nullptr;
  listing->entries.reserve(count);
  size_t off = kListingHeader;
  for (uint32_t i = 0; i < count; i++) {
    if (n - off < kListingEntryHead) return nullptr;
    ListEntry e;
    e.key = Load<uint64_t>(p + off);
    e.ino = Load<uint64_t>(p + off + 8);
    e.type = Load<uint32_t>(p + off + 16);
    uint16_t name_len = Load<uint16_t>(p + off + 20);
    e.has_attr = p[off + 22] != 0;
    off += kListingEntryHead;
    if (e.has_attr) {
      if (n - off < sizeof(fuse_attr)) return nullptr;
      std::memcpy(&e.attr, p + off, sizeof(fuse_attr));
      off += sizeof(fuse_attr);
    }
    if (n - off < name_len || !ValidName(reinterpret_cast<const char*>(p + off), name_len)) return nullptr;
    e.name.assign(reinterpret_cast<const char*>(p + off), name_len);
    off += name_len;
    if (e.type > 15) return nullptr;
    listing->entries.push_back(std::move(e));
  }
  if (off != n) return nullptr;
  return listing;
}

// Parses xattrs packed by wire.ts (encodeXattrs). Null when malformed.
std::shared_ptr<XattrSet> ParseXattrs(const uint8_t* p, size_t n) {
  if (n < 4) return nullptr;
  uint32_t count = Load<uint32_t>(p);
  if (count > (n - 4) / 8) return nullptr;
  auto set = std::make_shared<XattrSet>();
  size_t off = 4;
  for (uint32_t i = 0; i < count; i++) {
    if (n - off < 8) return nullptr;
    uint32_t name_len = Load<uint32_t>(p + off);
    uint32_t value_len = Load<uint32_t>(p + off + 4);
    off += 8;
    if (name_len == 0 || name_len > kNameMax || value_len > 65536) return nullptr;
    if (n - off < static_cast<size_t>(name_len) + value_len) return nullptr;
    std::string name(reinterpret_cast<const char*>(p + off), name_len);
    if (name.find('\0') != std::string::npos) return nullptr;
    off += name_len;
    std::string value(reinterpret_cast<const char*>(p + off), value_len);
    off += value_len;
    set->items.emplace_back(std::move(name), std::move(value));
  }
  if (off != n) return nullptr;
  return set;
}

}  // namespace strata_fuse
