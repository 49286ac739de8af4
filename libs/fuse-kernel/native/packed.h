// Buffers packed by src/wire.ts (encodeListing, encodeXattrs), parsed and
// checked: null when malformed, never an allocation beyond what the buffer holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "cache.h"

namespace strata_fuse {

constexpr size_t kNameMax = 255;

// A path component: 1-255 bytes without '/' or NUL.
bool ValidName(const char* p, size_t n);
std::shared_ptr<Listing> ParseListing(const uint8_t* p, size_t n);
std::shared_ptr<XattrSet> ParseXattrs(const uint8_t* p, size_t n);

}  // namespace strata_fuse
