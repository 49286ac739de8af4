// The per-opcode table: for each FUSE opcode, how a request of it is decoded,
// which handler answers it (or which errno refuses it), whether the native
// cache may answer it, and what JavaScript answers it with when it goes
// there. Dispatch, the notifier's drain, the replies from JavaScript and the
// addon all read this one table (go-fuse's fuse/opcode.go is the model), so
// an opcode is spelled here once; src/ops.ts is its TypeScript counterpart.
#pragma once

#include <errno.h>
#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace strata_fuse {

class Session;

// One request as dispatch hands it to a handler, its arguments decoded.
struct Request {
  int fd;                   // where the reply goes
  const fuse_in_header& h;
  const char* arg;          // the argument struct (at least the row's in_size bytes)
  size_t n;                 // bytes at arg
  uint64_t key = 0;         // the node's key, for rows that resolve it
  std::string name;         // the NUL-terminated name after the struct, for rows with one
  char* buf = nullptr;      // the reader's buffer: free for the answer once the arguments are read
};

using Handler = void (Session::*)(Request& r);

// Which of the session's Reply* calls answers an op from JavaScript.
enum class JsAnswer : uint8_t {
  kNone = 0,  // never handed to JavaScript
  kEntry,     // ReplyEntry, ReplyNegative
  kAttr,      // ReplyAttr
  kListing,   // ReplyListing
  kData,      // ReplyData
  kLink,      // ReplyLink
  kXattr,     // ReplyXattr
  kStatfs,    // ReplyStatfs
  kOpen,      // ReplyOpen (openHook: the handler registered file data, or not; the OPEN is then answered natively)
};

struct Opcode {
  const char* name = nullptr;  // null: an opcode this session does not know (ENOSYS)
  Handler handler = nullptr;   // null: answered `refuse` on the reader thread
  int refuse = ENOSYS;         // EROFS for what would write, ENOSYS for the rest (the kernel then does it itself)
  size_t in_size = 0;          // decode: the argument struct; shorter is EINVAL (dropped when no reply)
  bool has_name = false;       // decode: a NUL-terminated name follows the struct
  bool resolve = false;        // the nodeid is mapped to its key first (ESTALE when the session never gave it)
  // Whether a malformed request, or one refused while the session stops, is
  // answered: not FORGET, BATCH_FORGET and NOTIFY_REPLY (the kernel waits for
  // nothing) nor INTERRUPT (whose only answer, EAGAIN, is its handler's).
  bool reply = true;
  bool cached = false;         // the native cache (or registered file data) may answer it without JavaScript
  JsAnswer js = JsAnswer::kNone;  // what JavaScript answers with, for ops that can reach it
};

// The row of opcode (a row with name null for an unknown one).
const Opcode& OpcodeOf(uint32_t opcode);

// Opcodes below this have rows; any other is unknown (FUSE's are below 64).
constexpr uint32_t kOpcodeLimit = 64;

}  // namespace strata_fuse
