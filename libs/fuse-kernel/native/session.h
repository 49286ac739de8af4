// One FUSE connection: the /dev/fuse fds, the mount, the reader threads and
// every answer that needs no JavaScript. What the cache cannot answer is
// handed to the Bridge (JavaScript, through a thread-safe function) as a
// Pending request and answered later by one of the Reply* calls, from any
// thread, on the fd the request was read from.
#pragma once

#include <linux/fuse.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cache.h"
#include "notifier.h"
#include "open-table.h"
#include "opcodes.h"

namespace strata_fuse {

// Protocol 7.40 passthrough, defined here because the uapi header of this
// machine stops at 7.38 (values from the kernel's include/uapi/linux/fuse.h).
constexpr uint64_t kFusePassthrough = 1ULL << 37;  // INIT flag, in flags2 (needs FUSE_INIT_EXT)
constexpr uint32_t kFopenPassthrough = 1u << 7;
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kIocBackingOpen = _IOW(FUSE_DEV_IOC_MAGIC, 1, BackingMap);
constexpr unsigned long kIocBackingClose = _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t);
// fuse_open_out as of 7.40: the 7.38 padding became the backing id.
struct OpenOut {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};
static_assert(sizeof(OpenOut) == sizeof(fuse_open_out), "fuse_open_out layout");

struct MountOptions {
  std::string mountpoint;
  std::string fsname = "strata";
  std::string subtype = "strata";
  unsigned threads = 4;
  uint64_t root_key = 1;
  bool exec = false;
  bool suid = false;
  bool dev = false;
  bool allow_other = true;
  // Who the kernel lets in without allow_other (FUSE admits only this uid and gid); -1: this process's.
  int64_t owner_uid = -1;
  int64_t owner_gid = -1;
  bool default_permissions = true;
  bool keep_cache = false;  // sealed: FOPEN_KEEP_CACHE on files, FOPEN_CACHE_DIR|KEEP_CACHE on directories
  int readdirplus = 2;      // 0 never, 1 auto (the kernel decides), 2 always
  bool clone_fd = true;     // one /dev/fuse fd per reader thread (FUSE_DEV_IOC_CLONE)
  uint64_t cache_limit = 1 << 20;
  Timeout negative_timeout;  // for names a cached listing lacks
  bool notify_forget = false;
  bool notify_release = false;
  bool notify_open = false;  // every OPEN told to JS after the fact (audit): who opened which ino
  // A file's first OPEN while nothing is registered for it goes to JavaScript
  // (its open handler may register file data first, so that this very open
  // is passthrough); asked once per ino, until the set of asked inos fills.
  bool open_hook = false;
  // The kernel opens files itself (FUSE_NO_OPEN_SUPPORT, protocol 7.23): the
  // first OPEN of a file is answered ENOSYS, the kernel remembers that for
  // the connection's life and sends no OPEN or RELEASE of a file again
  // (each open is then KEEP_CACHE, fh 0). No passthrough (it needs an OPEN
  // answer): not asked for at INIT, and registered file data is served by
  // pread. Needs keep_cache semantics (sealed content). Where the kernel
  // does not offer it, OPENs are answered as usual (stats: kernel_opens).
  bool kernel_opens = false;
  // pread registrations kept at once (each holds an fd of this process; the
  // least recently read is let go past it); 0: an eighth of RLIMIT_NOFILE,
  // 64..4096.
  uint64_t pread_files = 0;
  unsigned max_pages = 256;  // 1 MiB requests
  bool passthrough = true;   // ask for FUSE_PASSTHROUGH when the kernel offers it
  unsigned max_stack_depth = 1;  // 1: backing files on a plain filesystem, and this mount may sit under overlayfs
  int data_serving = 0;      // DataServing: how SetFileData serves an ino by default
  // A request handed to JavaScript and not answered within this is answered
  // EIO by the deadline thread (a wedged JavaScript thread cannot); 0: never.
  uint64_t request_timeout_ms = 0;
  // Which session of the connection this is (0: the one that mounted it; each
  // takeover one more). The top bits of every fh, so a successor's handles
  // never equal the ones files still hold from before.
  uint32_t generation = 0;
  // Where how files are open is kept for a successor even across a crash
  // (open-table.h; empty: nowhere) and how many inos it holds.
  std::string open_modes_file;
  uint32_t open_modes_capacity = 1u << 16;
};

// Protocol 7.40: the kernel puts every request read but not answered back
// in its pending queue, its unique with bit 63 set (FUSE_UNIQUE_RESEND; the
// answer echoes it). Values from the kernel's include/uapi/linux/fuse.h.
constexpr int kFuseNotifyResend = 7;

// What INIT agreed on, which a successor cannot ask again: it is restored
// from the handover state instead (src/session.ts SessionHandover).
struct Negotiated {
  uint32_t minor = 0;
  uint64_t flags = 0;  // flags | flags2 << 32
  uint32_t max_pages = 0;
  bool passthrough = false;
  // The connection's files are opened by the kernel (OPENs answered ENOSYS):
  // the kernel keeps no_open for the connection's life, so a successor must too.
  bool kernel_opens = false;
};

// Passthrough across a takeover: backing ids belong to the connection, not
// to the daemon, and the kernel inodes open through them keep using them,
// so Release leaves them open and hands them on; the successor owns them
// (closes each when its last user goes) and answers OPENs as before.
struct HandedOpen {
  uint64_t key = 0;
  uint32_t cached = 0;
  uint32_t passthrough = 0;
  int32_t backing_id = -1;  // what the passthrough opens share; -1 when none
};
struct HandedBacking {
  uint64_t key = 0;
  int32_t backing_id = -1;  // key's registered passthrough file data
};
struct HandedFiles {
  std::vector<HandedOpen> opens;
  std::vector<HandedBacking> backings;
  bool given = false;  // a handover's files: taken after release (else the open table is read)
};

// How Adopt learnt how files are open: "files" (the handover state),
// "table" (the open-modes file), "none"; problem says why the table was not
// used when it was looked for.
struct OpenModesRestore {
  std::string source = "none";
  std::string problem;
  uint32_t opens = 0;
  uint32_t backings = 0;
  bool overflowed = false;
};

// How a registered file's data reaches the kernel.
enum DataServing : int {
  kServeAuto = 0,         // passthrough when negotiated, else pread
  kServePassthrough = 1,  // passthrough or -EOPNOTSUPP
  kServePread = 2,        // pread on the reader threads
};

// A request JavaScript answers. id is ours (safe as a JS number); unique
// and fd say where the reply goes.
struct Pending {
  uint64_t id = 0;
  uint64_t unique = 0;
  int fd = -1;
  uint32_t opcode = 0;
  uint64_t nodeid = 0;
  uint64_t key = 0;
  std::string name;
  uint64_t fh = 0;
  uint64_t offset = 0;
  uint32_t size = 0;
  uint32_t flags = 0;
  uint32_t uid = 0, gid = 0, pid = 0;
  int64_t deadline = 0;  // MonotonicNs() after which the deadline thread answers EIO; 0: none
};

struct Event {
  enum Kind { kRequest, kForget, kRelease, kEnd, kNotified, kOpen } kind = kRequest;
  Pending request;             // kRequest
  // kForget: keys the kernel no longer holds; kRelease: {key, fh};
  // kOpen: {key, fh, uid, gid, pid} of an OPEN already answered;
  // kNotified: {token, errno of the notify write (0: the kernel dropped something)}
  std::vector<uint64_t> keys;
  std::string reason;          // kEnd
};

class Bridge {
 public:
  virtual ~Bridge() = default;
  // Called from reader threads; must not block.
  virtual void Post(Event&& event) = 0;
};

struct SessionStats {
  CacheStats cache;
  uint64_t requests = 0;   // read from the kernel
  uint64_t native = 0;     // answered on reader threads
  uint64_t to_js = 0;      // handed to JavaScript
  uint64_t pending = 0;    // JavaScript has not answered yet
  uint64_t interrupts = 0;
  uint64_t open_dirs = 0;
  uint32_t proto_minor = 0;
  uint32_t max_pages = 0;
  uint32_t flags = 0;  // negotiated INIT flags
  bool passthrough = false;
  bool kernel_opens = false;  // OPENs of files answered ENOSYS: the kernel opens them itself
  uint64_t opens = 0;         // OPENs of files read from the kernel
  uint64_t releases = 0;      // RELEASEs of files read from the kernel
  uint64_t pread_reads = 0;   // READs answered by pread(2) on a reader thread
  uint64_t pread_errors = 0;  // READs answered EIO because pread(2) failed
  uint64_t notices = 0;      // invalidation notices queued, not yet written
  uint64_t timeouts = 0;      // requests answered EIO by the deadline thread
  uint64_t late_replies = 0;  // JavaScript answers to requests no longer waiting (timed out, interrupted, released)
  uint64_t handed_over = 0;   // requests left to the successor by Release
  int resend_error = -1;      // adopted: errno of FUSE_NOTIFY_RESEND (0: sent); -1: not adopted
  bool released = false;
};

class Session {
 public:
  // Opens /dev/fuse, mounts, negotiates INIT and starts the readers. On
  // failure returns null with errno in *err and a message in *what.
  static std::unique_ptr<Session> Mount(const MountOptions& options, Bridge* bridge, int* err, std::string* what);
  // Serves the connection fd (a /dev/fuse fd another session read from; it
  // is dup'd) without mount(2) or INIT: negotiated is what that session
  // agreed on, adopted the keys the kernel may hold (Cache::Adopt). Once
  // the readers run it sends FUSE_NOTIFY_RESEND, so what the old session
  // had read and not answered is read again here. adopt.cc.
  static std::unique_ptr<Session> Adopt(const MountOptions& options, int fd, const Negotiated& negotiated,
                                        const std::vector<uint64_t>& adopted, const HandedFiles& files,
                                        Bridge* bridge, int* err, std::string* what);
  ~Session();

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Replies: 0, or -ENOENT when the request is no longer waiting (answered,
  // interrupted, session closed), -EINVAL when the reply does not fit the op.
  int ReplyError(uint64_t id, int error);
  int ReplyEntry(uint64_t id, uint64_t key, const fuse_attr& attr, Timeout entry, Timeout attr_timeout,
                 int64_t cache_expires);
  int ReplyNegative(uint64_t id, Timeout entry, int64_t cache_expires);
  int ReplyAttr(uint64_t id, const fuse_attr& attr, Timeout attr_timeout, int64_t cache_expires);
  int ReplyListing(uint64_t id, std::shared_ptr<Listing> listing, bool cache);
  int ReplyData(uint64_t id, const char* data, size_t size);
  int ReplyLink(uint64_t id, std::string target, int64_t cache_expires);
  int ReplyXattr(uint64_t id, const char* data, size_t size);
  int ReplyStatfs(uint64_t id, const fuse_kstatfs& st, int64_t cache_expires);
  int ReplyOpen(uint64_t id);

  Cache& cache() { return cache_; }

  // Registers fd as holding exactly key's data (fd may be closed afterwards).
  // Passthrough (FUSE_DEV_IOC_BACKING_OPEN): later OPENs of key get the
  // backing id and the kernel reads the file itself. Pread: a dup of fd is
  // kept and every READ of key is answered from it on the reader thread.
  // Replaces an earlier registration. Returns kServePassthrough or
  // kServePread, or -errno (-EOPNOTSUPP: passthrough asked, not negotiated).
  int SetFileData(uint64_t key, int fd, int mode);
  // Registers key's data as runs over fds (each dup'ed here, per
  // registration; fds may be closed afterwards) and holes, served by pread
  // (never passthrough). runs: sorted, contiguous from 0 to size, each of
  // length > 0, at most kMaxFileRuns, file -1 or an index into fds (at most
  // kMaxRunFiles); else -EINVAL. Replaces an earlier registration.
  static constexpr size_t kMaxFileRuns = 65536;
  static constexpr size_t kMaxRunFiles = 64;
  int SetFileRuns(uint64_t key, const std::vector<int>& fds, std::vector<FileData::Run> runs, uint64_t size);
  // Drops key's registration: READs (and, for passthrough, later OPENs) go
  // to JavaScript again; files open with a backing keep it. 0 or -ENOENT.
  int ClearFileData(uint64_t key);

  // Kernel invalidation (FUSE_NOTIFY_INVAL_INODE / _ENTRY) for LIVE layers.
  // Drops the native cache's items at once; the notice is written by the
  // notifier thread (the kernel may wait on a lock that a request waiting
  // in JavaScript holds). Returns a token > 0 whose result arrives as a
  // kNotified event, 0 when the kernel holds no node to invalidate, or -errno.
  int64_t InvalidateInode(uint64_t key, int64_t offset, int64_t length);
  int64_t InvalidateEntry(uint64_t parent, const std::string& name);
  bool passthrough() const { return passthrough_; }
  bool kernel_opens() const { return kernel_opens_; }
  void CacheStatfs(const fuse_kstatfs& st, int64_t expires);

  // Stops the readers and closes every fd (the kernel then aborts the
  // connection: whatever still waits gets ENOTCONN). Idempotent; JS thread.
  void Stop();
  // Stops serving without ending the connection: the readers stop, what
  // waits in JavaScript is left unanswered (still in the kernel's processing
  // queues, for a successor's resend), and every fd is closed, so the
  // connection lives on in the copies someone else holds. 0 when done; 1
  // when an invalidation notice is still inside the kernel (it may wait for
  // a request the successor will answer): its fd closes when it returns,
  // and then a kEnd event "released" is posted. -ENOTCONN once stopped.
  int Release();
  // The fds the readers read from, the master first (what a holder must
  // keep open for the connection and its requests to outlive this process).
  std::vector<int> Fds() const { return fds_; }
  // What Release left open in the kernel for a successor (the opens of each
  // key and the passthrough registrations, with their backing ids); empty
  // until then (a live session's would be stale at once).
  const HandedFiles& Handed() const { return handed_; }
  const OpenModesRestore& restored() const { return restored_; }
  // The open table: records in use and capacity (0 when none is kept), and
  // whether an open went unrecorded (then no new passthrough opens).
  uint32_t open_table_records() { return table_->records(); }
  uint32_t open_table_capacity() const { return table_->active() ? table_->capacity() : 0; }
  bool open_table_overflowed() const { return table_->overflowed(); }
  Negotiated negotiated() const;
  // Whether request id still waits for JavaScript (not answered, timed out,
  // interrupted or released): a backlog a stuck JavaScript thread left
  // behind is not handed to handlers once native code has answered it.
  bool Waiting(uint64_t id);
  const MountOptions& options() const { return options_; }
  bool ended() const { return ended_.load(); }
  bool stopped() const { return stopped_; }
  SessionStats Stats();
  // Keys the kernel or this session may still name in a request to
  // JavaScript (the cache's, open directories' listings, requests waiting in
  // JavaScript): whatever JavaScript knows beyond these it may forget.
  std::vector<uint64_t> LiveKeys();

 private:
  Session(const MountOptions& options, Bridge* bridge);

  int Negotiate(int* err, std::string* what);
  void Start();
  void ReaderLoop(int fd, int ep);  // ep: its own epoll set, closed when it ends
  int64_t Notify(int code, std::string payload);
  void DrainWhileNotifying();
  void SendResend();
  void StartDeadlines();
  void StopDeadlines();
  void DeadlineLoop();
  void Handle(int fd, char* buf, size_t n);
  void End(const char* reason);

  // Sends a reply; returns 0 or the errno of writev (ENOENT: the kernel no
  // longer waits for it).
  int Send(int fd, uint64_t unique, int error, const void* data, size_t size);
  int SendV(int fd, uint64_t unique, int error, const struct iovec* iov, int n);
  void SendEntry(int fd, uint64_t unique, uint64_t key, const fuse_attr& attr, Timeout entry, Timeout attr_timeout,
                 const AttrRecord* seed);
  void SendListing(int fd, uint64_t unique, bool plus, const Listing& listing, uint64_t dir_key, uint64_t offset,
                   uint32_t size);
  void SendXattr(int fd, uint64_t unique, uint32_t size, const char* data, size_t len);
  void ToJs(Pending&& p);
  // The request id waits for, taken out of waiting; none when it no longer
  // waits (then a reply to it is late, and counted).
  std::optional<Pending> Take(uint64_t id);
  // Take for a reply of kind: -ENOENT in *result when it no longer waits,
  // -EINVAL (and EIO to the kernel) when its op is not answered that way.
  std::optional<Pending> TakeFor(uint64_t id, JsAnswer kind, int* result);

  // Handlers, one per row of the opcode table (opcodes.cc), grouped in
  // handlers-{node,file,dir,xattr,control}.cc.
  friend struct OpcodeTable;
  void OnLookup(Request& r);
  void OnForget(Request& r);
  void OnBatchForget(Request& r);
  void OnGetattr(Request& r);
  void OnReadlink(Request& r);
  void OnStatfs(Request& r);
  void OnOpen(Request& r);
  // The OPEN's answer from what is registered now (OnOpen, ReplyOpen, the deadline thread).
  void AnswerOpen(const Pending& p);
  // Whether openHook asks JavaScript about this ino (first time only).
  bool AskOpen(uint64_t key);
  void OnRelease(Request& r);
  void Closed(uint64_t key, uint64_t fh);  // a file's RELEASE: OpenModes of key
  void OnRead(Request& r);
  void OnOpendir(Request& r);
  void OnReleasedir(Request& r);
  void OnReaddir(Request& r);
  void OnGetxattr(Request& r);
  void OnListxattr(Request& r);
  void OnInterrupt(Request& r);
  void OnInit(Request& r);
  void OnDestroy(Request& r);
  void OnNotifyReply(Request& r);
  void ForgetKeys(std::vector<uint64_t>&& keys);

  MountOptions options_;
  Bridge* bridge_;
  Cache cache_;
  int master_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: readable once Stop() is called, wakes every reader
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  size_t bufsize_ = 0;
  uint32_t proto_minor_ = 0;
  uint32_t flags_ = 0;
  bool passthrough_ = false;
  bool kernel_opens_ = false;  // options_.kernel_opens, where the kernel offered FUSE_NO_OPEN_SUPPORT

  std::shared_ptr<FileData::Connection> connection_ = std::make_shared<FileData::Connection>();

  Notifier notifier_;  // invalidation notices, on a cloned fd of their own
  std::atomic<bool> stopping_{false};
  std::atomic<bool> ended_{false};
  bool stopped_ = false;
  bool released_ = false;
  std::thread release_thread_;  // Release with a notice still in the kernel: waits for it, then closes its fd
  std::mutex release_mu_;
  bool bridge_gone_ = false;    // Stop() after Release: the bridge may go, so the release thread posts nothing
  int resend_error_ = -1;
  HandedFiles handed_;  // Release's snapshot
  OpenModesRestore restored_;
  std::shared_ptr<OpenTable> table_ = std::make_shared<OpenTable>();
  // The connection's opens are not all known (a table that overflowed, now
  // or before a takeover): no OPEN is answered passthrough anew.
  bool no_new_passthrough_ = false;
  void KeepOpenModes(uint32_t generation, bool overflowed);  // creates the table from opens_ and the registrations
  void RestoreFiles(const HandedFiles& files);  // Adopt: the predecessor's opens and backing ids

  // requestTimeoutMs: one thread scans what waits in JavaScript.
  std::mutex deadline_mu_;
  std::condition_variable deadline_cv_;
  bool deadline_stop_ = false;
  std::thread deadline_thread_;

  std::mutex pending_mu_;
  std::unordered_map<uint64_t, Pending> pending_;
  std::unordered_map<uint64_t, uint64_t> pending_by_unique_;
  uint64_t next_id_ = 1;

  struct DirHandle {
    uint64_t key;
    std::shared_ptr<const Listing> listing;
  };
  std::mutex dirs_mu_;
  std::unordered_map<uint64_t, DirHandle> dirs_;
  std::atomic<uint64_t> next_fh_{1};

  // How each inode's files are open right now. The kernel refuses to mix
  // passthrough and cached opens of one inode while both are open (open(2)
  // fails EIO), and wants every passthrough open to share one backing file,
  // so a new open follows the files already open, and a registration made
  // (or cleared) meanwhile applies once they are closed. The low bit of an
  // fh says which kind it is, so RELEASE needs no lookup of its own.
  struct OpenModes {
    uint32_t cached = 0;
    uint32_t passthrough = 0;
    std::shared_ptr<const FileData> backing;  // what the passthrough opens share
  };
  std::mutex opens_mu_;
  std::unordered_map<uint64_t, OpenModes> opens_;
  // openHook: the inos whose first OPEN JavaScript was asked about (bounded: cleared when full).
  std::mutex asked_mu_;
  std::unordered_set<uint64_t> asked_opens_;

  std::mutex statfs_mu_;
  std::optional<std::pair<fuse_kstatfs, int64_t>> statfs_;

  std::atomic<uint64_t> n_requests_{0}, n_native_{0}, n_js_{0}, n_interrupts_{0}, n_pread_{0},
      n_pread_errors_{0}, n_timeouts_{0}, n_late_{0}, n_handed_over_{0}, n_opens_{0}, n_releases_{0};
};

int Unmount(const std::string& mountpoint);  // umount2(MNT_DETACH): 0 or errno

Timeout TimeoutFromSeconds(double seconds);
int64_t ExpiryFromSeconds(double seconds);  // 0 = do not cache, kNever = until evicted

}  // namespace strata_fuse
