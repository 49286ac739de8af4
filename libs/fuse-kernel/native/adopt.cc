// Takeover (issue 27): a session that stops serving without ending the
// connection (Release), and one that serves a connection another session
// made (Adopt). The kernel keeps a connection while any fd of any of its
// devices is open, and a device's unanswered requests while its file is: a
// holder keeps copies of the fds (Fds) across the agent's death, and the
// successor has the kernel put what was read but never answered back in
// the queue (FUSE_NOTIFY_RESEND), so no caller sees the change of server.
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <unordered_map>

#include "protocol.h"
#include "session.h"

namespace strata_fuse {

Negotiated Session::negotiated() const {
  Negotiated n;
  n.minor = proto_minor_;
  n.flags = flags_ | (passthrough_ ? kFusePassthrough : 0);
  n.max_pages = options_.max_pages;
  n.passthrough = passthrough_;
  n.kernel_opens = kernel_opens_;
  return n;
}

int Session::Release() {
  if (stopped_) return -ENOTCONN;
  stopped_ = true;
  released_ = true;
  stopping_.store(true);  // nothing reaches JavaScript from here on, no kEnd either
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
  }
  // Queued notices go (JavaScript settles them false); one inside the
  // kernel is waited for below.
  notifier_.Stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  StopDeadlines();
  {
    // Left unanswered on purpose: they stay in the kernel's processing
    // queues of devices the holder keeps open, and the successor's resend
    // hands them out again. A late answer from JavaScript is dropped.
    std::lock_guard<std::mutex> lock(pending_mu_);
    n_handed_over_.fetch_add(pending_.size(), std::memory_order_relaxed);
    pending_.clear();
    pending_by_unique_.clear();
  }
  // Passthrough backing ids stay open: kernel inodes open through them
  // still use them (an OPEN of such an inode must name the same id), and
  // the successor serves registered files with them. With the connection's
  // fd gone first, no FileData gives its id back from here on; the
  // snapshot (the readers have stopped: nothing changes any more) says
  // which ids the successor now owns. Pread dups close.
  {
    std::lock_guard<std::mutex> lock(connection_->mu);
    connection_->fd = -1;
  }
  {
    std::lock_guard<std::mutex> lock(opens_mu_);
    handed_.opens.reserve(opens_.size());
    for (const auto& [key, m] : opens_) {
      HandedOpen h;
      h.key = key;
      h.cached = m.cached;
      h.passthrough = m.passthrough;
      h.backing_id = m.passthrough > 0 && m.backing ? m.backing->backing_id() : -1;
      handed_.opens.push_back(h);
    }
  }
  for (const auto& [key, id] : cache_.Backings()) handed_.backings.push_back(HandedBacking{key, id});
  cache_.TakeAllData().clear();
  for (int fd : fds_) close(fd);
  fds_.clear();
  master_fd_ = -1;
  if (stop_fd_ >= 0) close(stop_fd_);
  stop_fd_ = -1;
  if (!notifier_.busy()) {
    notifier_.Join();
    notifier_.Close();
    return 0;
  }
  // The notice may wait for a lock a request the successor will answer
  // holds (so never on the JavaScript thread, where the successor may run).
  release_thread_ = std::thread([this] {
    notifier_.Join();
    notifier_.Close();
    std::lock_guard<std::mutex> lock(release_mu_);
    if (bridge_gone_) return;
    Event ev;
    ev.kind = Event::kEnd;
    ev.reason = "released";
    bridge_->Post(std::move(ev));
  });
  return 1;
}

std::unique_ptr<Session> Session::Adopt(const MountOptions& options, int fd, const Negotiated& negotiated,
                                        const std::vector<uint64_t>& adopted, const HandedFiles& files,
                                        Bridge* bridge, int* err, std::string* what) {
  std::unique_ptr<Session> s(new Session(options, bridge));
  s->options_.threads = std::clamp(options.threads, 1u, 64u);
  s->options_.max_pages = std::clamp(negotiated.max_pages, 1u, 256u);
  s->bufsize_ = static_cast<size_t>(s->options_.max_pages) * 4096 + kHeaderRoom;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    *err = errno;
    *what = "adopting fd " + std::to_string(fd);
    return nullptr;
  }
  // /dev/fuse is the misc device 10:229; anything else would be read as requests.
  if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 10 || minor(st.st_rdev) != 229) {
    *err = EINVAL;
    *what = "adopting fd " + std::to_string(fd) + ": not a /dev/fuse descriptor";
    return nullptr;
  }
  if (negotiated.minor < kMinMinor) {
    *err = EINVAL;
    *what = "adopting a connection of FUSE protocol 7." + std::to_string(negotiated.minor);
    return nullptr;
  }
  s->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->stop_fd_ < 0) {
    *err = errno;
    *what = "eventfd";
    return nullptr;
  }
  s->master_fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (s->master_fd_ < 0) {
    *err = errno;
    *what = "dup of fd " + std::to_string(fd);
    return nullptr;
  }
  s->proto_minor_ = negotiated.minor;
  s->flags_ = static_cast<uint32_t>(negotiated.flags);
  // The kernel keeps no_open once it has seen an OPEN answered ENOSYS: the
  // connection's mode, whatever this session's own options say.
  s->kernel_opens_ = negotiated.kernel_opens;
  s->passthrough_ = negotiated.passthrough && !s->kernel_opens_;
  s->cache_.Adopt(adopted);
  // After a crash no state was taken after release: the predecessor's open
  // table says how files are open (read as the state's files would be).
  bool overflowed = false;
  uint32_t generation = s->options_.generation;
  if (files.given) {
    s->restored_.source = "files";
    s->RestoreFiles(files);
  } else if (s->passthrough_ && !options.open_modes_file.empty()) {
    OpenTableContents t;
    std::string why;
    if (OpenTable::Read(options.open_modes_file, &t, &why)) {
      HandedFiles from;
      for (const auto& o : t.opens) from.opens.push_back(HandedOpen{o.key, o.cached, o.passthrough, o.backing_id});
      for (const auto& [key, id] : t.registered) from.backings.push_back(HandedBacking{key, id});
      s->restored_.source = "table";
      overflowed = t.overflowed;
      // fhs of this session must differ from those of every one before it, even one the record does not know of.
      if (t.generation >= generation) generation = std::min<uint32_t>(t.generation + 1, 4194303);
      s->RestoreFiles(from);
    } else {
      s->restored_.problem = why;
    }
  }
  // Told nothing of how files are open, an OPEN answered passthrough anew
  // could meet cached opens the kernel holds (EIO): only cached ones then.
  if (s->passthrough_ && s->restored_.source == "none") s->no_new_passthrough_ = true;
  if (generation != s->options_.generation) {
    s->options_.generation = generation;
    s->next_fh_.store(1 + (static_cast<uint64_t>(generation) << 40));
  }
  s->KeepOpenModes(generation, overflowed);
  s->Start();
  s->SendResend();
  return s;
}

// Before the readers start: the first OPEN must already follow the files
// the predecessor left open. Each backing id becomes one FileData (shared by
// the opens and the registration naming it), given back by its last user as
// if this session had opened it; RELEASE of an old fh (bit 0: passthrough)
// counts down its key's opens like one of ours. Without passthrough nothing
// can be open through a backing file: the opens' counts alone are kept.
void Session::RestoreFiles(const HandedFiles& files) {
  std::unordered_map<int32_t, std::shared_ptr<const FileData>> by_id;
  auto backing = [&](int32_t id, uint64_t key) -> std::shared_ptr<const FileData> {
    if (!passthrough_ || id <= 0) return nullptr;
    auto& d = by_id[id];
    if (!d) d = FileData::Backing(id, connection_, key);
    return d;
  };
  {
    std::lock_guard<std::mutex> lock(opens_mu_);
    for (const HandedOpen& h : files.opens) {
      OpenModes m;
      m.cached = h.cached;
      if (h.passthrough > 0) {
        m.backing = backing(h.backing_id, h.key);
        // No id to answer with: new opens go cached, as without the state.
        if (m.backing) m.passthrough = h.passthrough;
      }
      if (m.cached > 0 || m.passthrough > 0) opens_[h.key] = std::move(m);
    }
  }
  for (const HandedBacking& h : files.backings) {
    std::shared_ptr<const FileData> d = backing(h.backing_id, h.key);
    if (d) cache_.PutData(h.key, std::move(d));
  }
}

// The table this session keeps, made from what it knows now (before the
// readers start): the opens restored and the registrations. A table that
// cannot be made leaves passthrough to the opens already known.
void Session::KeepOpenModes(uint32_t generation, bool overflowed) {
  restored_.overflowed = overflowed;
  if (overflowed) no_new_passthrough_ = true;
  if (!passthrough_ || options_.open_modes_file.empty()) return;
  OpenTableContents c;
  c.overflowed = overflowed;
  {
    std::lock_guard<std::mutex> lock(opens_mu_);
    for (const auto& [key, m] : opens_) {
      c.opens.push_back({key, m.cached, m.passthrough, m.passthrough > 0 && m.backing ? m.backing->backing_id() : -1});
    }
  }
  for (const auto& [key, id] : cache_.Backings()) c.registered.emplace_back(key, id);
  restored_.opens = static_cast<uint32_t>(c.opens.size());
  restored_.backings = static_cast<uint32_t>(c.registered.size());
  std::string why;
  if (!table_->Create(options_.open_modes_file, options_.open_modes_capacity, generation, c, &why)) {
    // Nothing on file: a successor after a crash could not know how files are open here.
    if (!restored_.problem.empty()) restored_.problem += "; ";
    restored_.problem += why;
    no_new_passthrough_ = true;
    return;
  }
  std::lock_guard<std::mutex> lock(connection_->mu);
  connection_->table = table_;
}

// Written here, on the adopting thread, rather than by the notifier: the
// kernel only moves requests between its queues (no waiting), and once
// Adopt returns the caller may close the old devices (their processing
// queues must be empty by then, or those requests would end ECONNABORTED).
void Session::SendResend() {
  fuse_out_header out{};
  out.len = sizeof(out);
  out.error = kFuseNotifyResend;
  out.unique = 0;
  ssize_t w;
  do {
    w = write(master_fd_, &out, sizeof(out));
  } while (w < 0 && errno == EINTR);
  resend_error_ = w < 0 ? errno : 0;
}

}  // namespace strata_fuse
