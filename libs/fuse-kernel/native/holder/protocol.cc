#include "protocol.h"

namespace holder {

static uint32_t Get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

static void Put32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; i++) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool Decode(const uint8_t* bytes, size_t length, Message* out, const char** why) {
  if (length < kHeaderSize) {
    *why = "shorter than a header";
    return false;
  }
  if (Get32(bytes) != kMagic) {
    *why = "bad magic";
    return false;
  }
  size_t id_length = static_cast<size_t>(bytes[6]) | static_cast<size_t>(bytes[7]) << 8;
  size_t meta_length = Get32(bytes + 8);
  if (id_length > kMaxId || meta_length > kMaxMeta || kHeaderSize + id_length + meta_length != length) {
    *why = "lengths do not match the packet";
    return false;
  }
  out->type = bytes[4];
  out->flags = bytes[5];
  out->value = Get32(bytes + 12);
  out->id.assign(reinterpret_cast<const char*>(bytes + kHeaderSize), id_length);
  out->meta.assign(reinterpret_cast<const char*>(bytes + kHeaderSize + id_length), meta_length);
  return true;
}

std::string Encode(uint8_t type, uint8_t flags, uint32_t value, const std::string& id, const std::string& meta) {
  std::string out;
  out.reserve(kHeaderSize + id.size() + meta.size());
  Put32(&out, kMagic);
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  out.push_back(static_cast<char>(id.size() & 0xff));
  out.push_back(static_cast<char>((id.size() >> 8) & 0xff));
  Put32(&out, static_cast<uint32_t>(meta.size()));
  Put32(&out, value);
  out += id;
  out += meta;
  return out;
}

}  // namespace holder
