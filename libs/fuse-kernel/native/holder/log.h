// One JSON object per line on stderr per event: what an operator greps and a test parses.
#pragma once
#include <cstdint>
#include <string>

namespace holder {

class LogLine {
 public:
  explicit LogLine(const char* event);
  ~LogLine();
  LogLine& Str(const char* key, const std::string& value);
  LogLine& Num(const char* key, int64_t value);
  LogLine& Bool(const char* key, bool value);
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

 private:
  std::string line_;
};

// JSON string literal of arbitrary bytes: control and non-ASCII bytes as \u00XX (ids are bytes, not UTF-8).
std::string JsonString(const std::string& bytes);

}  // namespace holder
