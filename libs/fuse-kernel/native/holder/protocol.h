// The holder's wire protocol over SOCK_SEQPACKET: one message per packet, a fixed 16-byte
// little-endian header, then the id and meta bytes; fds ride along as SCM_RIGHTS.
//
//   u32 magic "SFH1" | u8 type | u8 flags | u16 idLength | u32 metaLength | u32 value
//
// Requests: PUT (flags: HARD; id, meta, 1..kMaxFdsPerEntry fds) → OK | ERR
//           LIST → ENTRY (id, meta, flags, fds) per entry, then END (value = count)
//           DROP (id) → OK (value = 1 dropped, 0 unknown)
//           HEARTBEAT (value = timeoutMs; 0 disarms the watchdog) → no answer
//           BYE → OK (the agent leaves on purpose)
//           STATUS → OK (meta = a JSON object describing the holder)
// ERR: value = errno, meta = a message.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace holder {

constexpr uint32_t kMagic = 0x31484653;  // "SFH1" little-endian
constexpr size_t kHeaderSize = 16;
constexpr size_t kMaxId = 255;
constexpr size_t kMaxMeta = 64 * 1024;
constexpr size_t kMaxMessage = kHeaderSize + kMaxId + kMaxMeta;
constexpr size_t kMaxFdsPerEntry = 64;
constexpr size_t kMaxEntries = 1024;
constexpr size_t kMaxTotalFds = 8192;
constexpr size_t kMaxClients = 16;
constexpr uint32_t kMaxTimeoutMs = 24u * 3600u * 1000u;

enum Type : uint8_t {
  kPut = 1,
  kList = 2,
  kDrop = 3,
  kHeartbeat = 4,
  kBye = 5,
  kStatus = 6,
  kOk = 0x81,
  kErr = 0x82,
  kEntry = 0x83,
  kEnd = 0x84,
};

constexpr uint8_t kFlagHard = 1;

struct Message {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t value = 0;
  std::string id;
  std::string meta;
};

// Parses one packet; false (and why) for anything malformed: a wrong magic, lengths that do not add up.
bool Decode(const uint8_t* bytes, size_t length, Message* out, const char** why);
std::string Encode(uint8_t type, uint8_t flags, uint32_t value, const std::string& id, const std::string& meta);

}  // namespace holder
