// OPEN, RELEASE and READ of files, and the registered file data that serves
// READs (pread) or OPENs (passthrough) without JavaScript.
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <algorithm>
#include <cstring>

#include "protocol.h"

namespace strata_fuse {

void Session::OnOpen(Request& r) {
  n_opens_.fetch_add(1, std::memory_order_relaxed);
  if (kernel_opens_) {
    // The open succeeds in the kernel, which sends no OPEN (nor RELEASE) of
    // a file on this connection again: a read-only mount refuses writes
    // before any OPEN, and each open keeps the page cache (KEEP_CACHE).
    n_native_.fetch_add(1, std::memory_order_relaxed);
    Send(r.fd, r.h.unique, ENOSYS, nullptr, 0);
    return;
  }
  const fuse_open_in in = Arg<fuse_open_in>(r);
  Pending p = PendingFor(r);
  p.flags = in.flags;
  if (options_.open_hook && passthrough_ && !no_new_passthrough_ && (in.flags & O_ACCMODE) == O_RDONLY &&
      (in.flags & O_TRUNC) == 0 && !cache_.Data(r.key) && AskOpen(r.key)) {
    // Answered by ReplyOpen once JavaScript has had its say (or by the deadline thread, natively).
    ToJs(std::move(p));
    return;
  }
  AnswerOpen(p);
}

bool Session::AskOpen(uint64_t key) {
  std::lock_guard<std::mutex> lock(asked_mu_);
  if (asked_opens_.size() >= options_.cache_limit) asked_opens_.clear();
  return asked_opens_.insert(key).second;
}

int Session::ReplyOpen(uint64_t id) {
  int result = 0;
  std::optional<Pending> p = TakeFor(id, JsAnswer::kOpen, &result);
  if (!p) return result;
  AnswerOpen(*p);
  return 0;
}

void Session::AnswerOpen(const Pending& p) {
  n_native_.fetch_add(1, std::memory_order_relaxed);
  if ((p.flags & O_ACCMODE) != O_RDONLY || (p.flags & O_TRUNC) != 0) {
    Send(p.fd, p.unique, EROFS, nullptr, 0);
    return;
  }
  OpenOut out{};
  bool through = false;
  {
    std::lock_guard<std::mutex> lock(opens_mu_);
    OpenModes& m = opens_[p.key];
    std::shared_ptr<const FileData> data;
    if (m.passthrough > 0) {
      through = true;
    } else if (passthrough_ && m.cached == 0 && !no_new_passthrough_) {
      data = cache_.Data(p.key);
      through = data && data->backing_id() >= 0;
    }
    // Recorded before the answer can reach the kernel (a crash in between
    // leaves an open counted that never was: the safe way to be wrong). A
    // new passthrough open that cannot be recorded is not made; one beside
    // passthrough opens must be (the kernel takes no other), recorded or not.
    if (through) {
      const int32_t backing = (m.passthrough > 0 ? m.backing : data)->backing_id();
      if (table_->SetOpens(p.key, m.cached, m.passthrough + 1, backing) || m.passthrough > 0) {
        if (m.passthrough == 0) m.backing = std::move(data);
        m.passthrough++;
        out.backing_id = backing;
      } else {
        through = false;
      }
    }
    if (!through) {
      m.cached++;
      table_->SetOpens(p.key, m.cached, m.passthrough, m.backing ? m.backing->backing_id() : -1);
    }
  }
  out.fh = (next_fh_.fetch_add(1) << 1) | (through ? 1 : 0);
  out.open_flags = through ? FOPEN_NOFLUSH | kFopenPassthrough : FOPEN_NOFLUSH | (options_.keep_cache ? FOPEN_KEEP_CACHE : 0);
  Send(p.fd, p.unique, 0, &out, sizeof(out));
  if (options_.notify_open) {
    // Answered first: an audit trail must not make opens wait for JavaScript.
    Event ev;
    ev.kind = Event::kOpen;
    ev.keys = {p.key, out.fh, p.uid, p.gid, p.pid};
    bridge_->Post(std::move(ev));
  }
}

void Session::Closed(uint64_t key, uint64_t fh) {
  std::shared_ptr<const FileData> last;  // given back outside the lock (BACKING_CLOSE)
  std::lock_guard<std::mutex> lock(opens_mu_);
  auto it = opens_.find(key);
  if (it == opens_.end()) return;
  OpenModes& m = it->second;
  if ((fh & 1) != 0) {
    if (m.passthrough > 0 && --m.passthrough == 0) last = std::move(m.backing);
  } else if (m.cached > 0) {
    m.cached--;
  }
  table_->SetOpens(key, m.cached, m.passthrough, m.backing ? m.backing->backing_id() : -1);
  if (m.cached == 0 && m.passthrough == 0) opens_.erase(it);
}

int Session::SetFileData(uint64_t key, int fd, int mode) {
  if (mode == kServeAuto) mode = passthrough_ ? kServePassthrough : kServePread;
  if (mode == kServePassthrough) {
    if (!passthrough_) return -EOPNOTSUPP;
    BackingMap map{fd, 0, 0};
    int id = ioctl(master_fd_, kIocBackingOpen, &map);
    if (id < 0) return -errno;
    // Recorded before the old registration (if any) is released, here,
    // outside the cache's lock (which clears it from the table, unless
    // this one took its place).
    table_->SetRegistered(key, id);
    cache_.PutData(key, FileData::Backing(id, connection_, key));
    return kServePassthrough;
  }
  if (mode != kServePread) return -EINVAL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return -errno;
  cache_.PutData(key, FileData::Pread(copy));
  return kServePread;
}

int Session::SetFileRuns(uint64_t key, const std::vector<int>& fds, std::vector<FileData::Run> runs,
                         uint64_t size) {
  if (fds.size() > kMaxRunFiles || runs.size() > kMaxFileRuns) return -EINVAL;
  if (size > static_cast<uint64_t>(INT64_MAX)) return -EINVAL;
  uint64_t at = 0;
  for (const FileData::Run& run : runs) {
    if (run.offset != at || run.length == 0 || run.length > size - at) return -EINVAL;
    if (run.file < -1 || run.file >= static_cast<int32_t>(fds.size())) return -EINVAL;
    if (run.file >= 0 && run.file_offset > static_cast<uint64_t>(INT64_MAX) - run.length) return -EINVAL;
    at += run.length;
  }
  if (at != size) return -EINVAL;
  std::vector<int> copies;
  copies.reserve(fds.size());
  for (int fd : fds) {
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
      const int err = errno;
      for (int c : copies) close(c);
      return -err;
    }
    copies.push_back(copy);
  }
  cache_.PutData(key, FileData::Runs(std::move(copies), std::move(runs), size));
  return kServePread;
}

// Fills buf with size bytes of data's runs from offset (clipped at its end);
// the count, or -1 when a pread fails or a store file ends inside its run.
static ssize_t ReadRuns(const FileData& data, char* buf, size_t want, uint64_t offset) {
  const uint64_t size = data.size();
  if (offset >= size) return 0;
  want = static_cast<size_t>(std::min<uint64_t>(want, size - offset));
  const std::vector<FileData::Run>& runs = data.runs();
  // The run holding offset: the last one starting at or before it.
  auto it = std::upper_bound(runs.begin(), runs.end(), offset,
                             [](uint64_t o, const FileData::Run& r) { return o < r.offset; });
  if (it == runs.begin()) return -1;
  --it;
  size_t got = 0;
  while (got < want && it != runs.end()) {
    const uint64_t at = offset + got;
    const uint64_t into = at - it->offset;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(want - got, it->length - into));
    if (it->file < 0) {
      memset(buf + got, 0, n);
    } else {
      const int fd = data.fds()[static_cast<size_t>(it->file)];
      size_t done = 0;
      while (done < n) {
        ssize_t k = pread(fd, buf + got + done, n - done, static_cast<off_t>(it->file_offset + into + done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;  // an error, or the store file is shorter than its map
        done += static_cast<size_t>(k);
      }
    }
    got += n;
    ++it;
  }
  return static_cast<ssize_t>(got);
}

int Session::ClearFileData(uint64_t key) {
  // The dup is closed (or the backing id given back) by the last user: this
  // scope, or a reader still in its pread.
  std::shared_ptr<const FileData> data = cache_.TakeData(key);
  return data ? 0 : -ENOENT;
}

void Session::OnRelease(Request& r) {
  n_native_.fetch_add(1, std::memory_order_relaxed);
  n_releases_.fetch_add(1, std::memory_order_relaxed);
  const fuse_release_in in = Arg<fuse_release_in>(r);
  // Counted down once answered: a RELEASE read but not answered before a
  // crash is resent to the successor, which counts it down itself.
  Send(r.fd, r.h.unique, 0, nullptr, 0);
  Closed(r.key, in.fh);
  if (options_.notify_release) {
    Event ev;
    ev.kind = Event::kRelease;
    ev.keys = {r.key, in.fh};
    bridge_->Post(std::move(ev));
  }
}

void Session::OnRead(Request& r) {
  const fuse_read_in in = Arg<fuse_read_in>(r);
  std::shared_ptr<const FileData> data = cache_.Data(r.key);
  if (data && data->has_runs()) {
    const size_t want = std::min<size_t>(in.size, bufsize_);
    const ssize_t got = ReadRuns(*data, r.buf, want, in.offset);
    n_native_.fetch_add(1, std::memory_order_relaxed);
    if (got < 0) {
      n_pread_errors_.fetch_add(1, std::memory_order_relaxed);
      Send(r.fd, r.h.unique, EIO, nullptr, 0);
    } else {
      n_pread_.fetch_add(1, std::memory_order_relaxed);
      Send(r.fd, r.h.unique, 0, r.buf, static_cast<size_t>(got));
    }
    return;
  }
  if (data && data->fd() >= 0) {
    // The request has been parsed: its buffer takes the data. Short at the
    // end of the file, empty past it; any failure is this READ's EIO.
    const size_t want = std::min<size_t>(in.size, bufsize_);
    size_t got = 0;
    bool failed = in.offset > static_cast<uint64_t>(INT64_MAX - static_cast<int64_t>(want));
    while (!failed && got < want) {
      ssize_t k = pread(data->fd(), r.buf + got, want - got, static_cast<off_t>(in.offset + got));
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) failed = true;
      if (k <= 0) break;
      got += static_cast<size_t>(k);
    }
    n_native_.fetch_add(1, std::memory_order_relaxed);
    if (failed) {
      n_pread_errors_.fetch_add(1, std::memory_order_relaxed);
      Send(r.fd, r.h.unique, EIO, nullptr, 0);
    } else {
      n_pread_.fetch_add(1, std::memory_order_relaxed);
      Send(r.fd, r.h.unique, 0, r.buf, got);
    }
    return;
  }
  Pending p = PendingFor(r);
  p.fh = in.fh;
  p.offset = in.offset;
  p.size = in.size;
  ToJs(std::move(p));
}

}  // namespace strata_fuse
