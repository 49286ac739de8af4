#include "log.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace holder {

std::string JsonString(const std::string& bytes) {
  std::string out = "\"";
  for (unsigned char c : bytes) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

LogLine::LogLine(const char* event) {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm {};
  gmtime_r(&ts.tv_sec, &tm);
  char when[96];
  std::snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>(ts.tv_nsec / 1000000) % 1000);
  line_ = std::string("{\"time\":\"") + when + "\",\"pid\":" + std::to_string(getpid()) + ",\"event\":" + JsonString(event);
}

LogLine& LogLine::Str(const char* key, const std::string& value) {
  line_ += "," + JsonString(key) + ":" + JsonString(value);
  return *this;
}

LogLine& LogLine::Num(const char* key, int64_t value) {
  line_ += "," + JsonString(key) + ":" + std::to_string(value);
  return *this;
}

LogLine& LogLine::Bool(const char* key, bool value) {
  line_ += "," + JsonString(key) + ":" + (value ? "true" : "false");
  return *this;
}

LogLine::~LogLine() {
  line_ += "}\n";
  // One write(2) per line: lines of concurrent writers (a shared journal stream) never interleave mid-line.
  size_t done = 0;
  while (done < line_.size()) {
    ssize_t n = write(STDERR_FILENO, line_.data() + done, line_.size() - done);
    if (n <= 0) break;  // stderr gone: logging is best effort, serving is not
    done += static_cast<size_t>(n);
  }
}

}  // namespace holder
