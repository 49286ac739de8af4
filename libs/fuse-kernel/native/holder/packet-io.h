// One SEQPACKET message with its fds, in and out, never blocking longer than a bound.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

namespace holder {

enum class RecvResult { kMessage, kClosed, kAgain, kError };

// Receives one packet into buf (capacity kMaxMessage + 1, so an oversized packet shows as truncated).
// Received fds are close-on-exec; a packet with more than maxFds fds, or truncated, is kError
// (every fd that came with it closed).
RecvResult RecvPacket(int sock, std::string* buf, std::vector<int>* fds, size_t maxFds);

// Sends one packet, waiting at most timeoutMs for room; false when it could not.
bool SendPacket(int sock, const std::string& bytes, const std::vector<int>& fds, int timeoutMs);

void CloseAll(std::vector<int>* fds);

}  // namespace holder
