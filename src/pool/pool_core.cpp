#include "pool/pool_core.hpp"

#include "pool/local_pools.hpp"
#include "pool/pool_watcher.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <pthread.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <string_view>

#include <fmt/format.h>

#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/detail/syscall.hpp"

namespace mpaio::detail {

using namespace pool;

namespace {

std::atomic<PoolFaultHook> fault_hook{nullptr};

inline void inject(PoolFaultPoint point) {
  if (auto hook = fault_hook.load(std::memory_order_relaxed)) hook(point);
}

// TLSF size mapping.
constexpr unsigned log2_floor(std::uint64_t v) noexcept { return 63u - static_cast<unsigned>(std::countl_zero(v)); }
inline void mapping_insert(std::uint64_t size, unsigned& fl, unsigned& sl) noexcept {
  if (size < (std::uint64_t{1} << kFlShift)) {
    fl = 0;
    sl = static_cast<unsigned>(size >> kAlignLog2);
  } else {
    const unsigned f = log2_floor(size);
    sl = static_cast<unsigned>(size >> (f - kSlLog2)) ^ kSlCount;
    fl = f - kFlShift + 1;
  }
}
inline void mapping_search(std::uint64_t size, unsigned& fl, unsigned& sl) noexcept {
  if (size >= (std::uint64_t{1} << kFlShift)) size += (std::uint64_t{1} << (log2_floor(size) - kSlLog2)) - 1;
  mapping_insert(size, fl, sl);
}
inline std::uint64_t round_up(std::uint64_t v, std::uint64_t to) noexcept { return (v + to - 1) / to * to; }
/// The smallest segment in which a request of `size` bytes is found: mapping_search looks from the
/// second-level class above `size` up, so the segment must reach that class's lower bound (size rounded up
/// to 1/16 of its power of two), then a whole page.
inline std::uint64_t segment_for(std::uint64_t size) noexcept {
  if (size >= (std::uint64_t{1} << kFlShift)) size = round_up(size, std::uint64_t{1} << (log2_floor(size) - kSlLog2));
  return round_up(size, 4096);
}
// The largest block: a request of kPoolMaxArrayBytes is looked up in the last second-level list of the last
// first level, and its segment_for() stays there.
static_assert(kPoolMaxArrayBytes % 4096 == 0 &&
              kPoolMaxArrayBytes + (std::uint64_t{1} << (log2_floor(kPoolMaxArrayBytes) - kSlLog2)) - 1 ==
                  (std::uint64_t{1} << (kFlCount + kFlShift - 1)) - 1);

}  // namespace

void set_pool_fault_hook(PoolFaultHook hook) noexcept { fault_hook.store(hook); }

ProcessStatus process_status(pid_t pid) noexcept {
  using State = ProcessStatus::State;
  // ENOENT: no /proc/<pid>; ESRCH: it exited between open() and read(). Anything else says nothing.
  auto failed = [](int err) {
    return err == ENOENT || err == ESRCH ? ProcessStatus{State::dead, 0, err} : ProcessStatus{State::unknown, 0, err};
  };
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failed(errno);
  char line[1024];
  ssize_t got = -1;
  do {
    got = ::read(fd, line, sizeof line - 1);
  } while (got < 0 && errno == EINTR);
  const int read_error = errno;
  ::close(fd);
  if (got < 0) return failed(read_error);
  if (got == 0) return ProcessStatus{State::unknown, 0, 0};
  line[got] = '\0';
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields count from the last ')'.
  const char* p = std::strrchr(line, ')');
  if (p == nullptr || p[1] != ' ') return ProcessStatus{State::unknown, 0, 0};
  p += 2;
  if (*p == 'Z' || *p == 'X' || *p == 'x') return ProcessStatus{State::dead, 0, 0};
  for (int field = 3; field < 22; ++field) {  // skip to field 22, starttime
    p = std::strchr(p, ' ');
    if (p == nullptr) return ProcessStatus{State::unknown, 0, 0};
    ++p;
  }
  if (*p < '0' || *p > '9') return ProcessStatus{State::unknown, 0, 0};
  std::uint64_t start = 0;
  for (; *p >= '0' && *p <= '9'; ++p) start = start * 10 + static_cast<std::uint64_t>(*p - '0');
  return ProcessStatus{State::alive, start, 0};
}

namespace {

/// The error for a /proc/<pid>/stat that could not be read (ProcessStatus::State::unknown).
SystemError unreadable_proc(pid_t pid, const ProcessStatus& status, const std::string& why) {
  return SystemError(describe_call("read", "path", fmt::format("/proc/{}/stat", pid)),
                     status.error != 0 ? status.error : EIO, why);
}

/// The start time of this process; throws SystemError when /proc cannot tell (no descriptor left, say),
/// rather than registering a start time that would later make it look dead.
std::uint64_t own_start_time(const char* what) {
  const pid_t pid = ::getpid();
  const ProcessStatus status = process_status(pid);
  if (status.state != ProcessStatus::State::alive) {
    throw unreadable_proc(pid, status, fmt::format("{}: cannot read this process's start time", what));
  }
  return status.start_time;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Segments opened through /proc

namespace {

/// The path /proc/<pid>/fd/<fd> links to when it is the segment `name`: "/memfd:mpaio-..." for a memfd, the
/// file under /dev/shm for a named segment (an anonymous pool's segments grown by other processes), either
/// one followed by " (deleted)" once unlinked.
bool is_segment_path(std::string_view path, std::string_view name) {
  if (path.ends_with(" (deleted)")) path.remove_suffix(10);
  if (name.starts_with('/')) return path.starts_with("/dev/shm") && path.substr(8) == name;
  return path.starts_with('/') && path.substr(1) == name;
}

}  // namespace

ProcFdSegment::ProcFdSegment(const std::string& name, pid_t pid, int fd, std::size_t size) {
  const std::string path = fmt::format("/proc/{}/fd/{}", pid, fd);
  fd_ = UniqueFd(sys("open", [&] { return ::open(path.c_str(), O_RDWR | O_CLOEXEC); }, "path", path, "segment", name));
  // Once the holder died and its pid was reused, another file may be open at that number: check the one
  // opened (through this process's own descriptor, so that nothing can change between the check and the map).
  const std::string own = fmt::format("/proc/self/fd/{}", fd_.get());
  char target[256];
  const ssize_t n = sys("readlink", [&] { return ::readlink(own.c_str(), target, sizeof target); }, "path", own);
  const std::string_view opened(target, static_cast<std::size_t>(n));
  if (!is_segment_path(opened, name)) {
    throw PoolCorrupted(fmt::format("pool segment {} opened through {} is {} (the descriptor was reused?)", name, path,
                                    opened));
  }
  struct stat st {};
  sys("fstat", [&] { return ::fstat(fd_.get(), &st); }, "path", path);
  if (static_cast<std::size_t>(st.st_size) != size) {
    throw PoolCorrupted(fmt::format("pool segment {} opened through {} has {} bytes, {} expected (the descriptor was "
                                    "reused?)", name, path, st.st_size, size));
  }
  mapping_ = Mapping(fd_.get(), size, true);
  key_ = register_segment(name, fd_.get(), mapping_.data(), size, true);
}

ProcFdSegment::~ProcFdSegment() { unregister_segment(key_); }

// ---------------------------------------------------------------------------------------------------------
// The journal and the lock

template <class T>
void PoolCore::set(T& field, T value) noexcept {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8);
  const std::uint32_t n = h_->journal_len;
  if (n >= kJournalCapacity) std::abort();  // a transaction larger than the journal is a bug
  std::uint64_t old = 0;
  std::memcpy(&old, &field, sizeof(T));
  const auto where = static_cast<std::uint64_t>(reinterpret_cast<std::byte*>(&field) - reinterpret_cast<std::byte*>(h_));
  h_->journal[n] = JournalEntry{(where << 4) | sizeof(T), old};
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the entry before the length, the length before the field
  h_->journal_len = n + 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  __atomic_store_n(&field, value, __ATOMIC_RELAXED);  // some fields are read unlocked, as hints
}

void PoolCore::commit() noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  h_->journal_len = 0;
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

void PoolCore::undo() noexcept {
  auto* base = reinterpret_cast<std::byte*>(h_);
  for (std::uint32_t i = std::min(h_->journal_len, kJournalCapacity); i-- > 0;) {
    const JournalEntry e = h_->journal[i];
    std::memcpy(base + (e.where >> 4), &e.old, e.where & 0xf);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    h_->journal_len = i;
  }
  h_->journal_len = 0;
}

void PoolCore::recover() noexcept {
  undo();
  ++h_->recoveries;
}

/// Holds the pool's robust mutex for a scope. A lock whose owner died rolls the dead owner's transaction
/// back first. Leaving the scope commits, or rolls back when an exception escapes.
class PoolCore::Locked {
 public:
  explicit Locked(PoolCore& core) : core_(core), exceptions_(std::uncaught_exceptions()) {
    const int rc = ::pthread_mutex_lock(&core_.h_->mutex);
    if (rc == EOWNERDEAD) {
      core_.recover();
      ::pthread_mutex_consistent(&core_.h_->mutex);
    } else if (rc != 0) {
      throw PoolCorrupted(fmt::format("pool {}: pthread_mutex_lock failed: {}", core_.name(), std::strerror(rc)));
    }
    inject(PoolFaultPoint::locked);
  }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;
  ~Locked() {
    if (std::uncaught_exceptions() > exceptions_) {
      core_.undo();
    } else {
      inject(PoolFaultPoint::before_commit);
      core_.commit();
    }
    ::pthread_mutex_unlock(&core_.h_->mutex);
  }

 private:
  PoolCore& core_;
  int exceptions_;
};

// ---------------------------------------------------------------------------------------------------------
// Creation, registration

std::size_t PoolCore::control_size_for(const PoolOptions& o) {
  const std::size_t blocks = round_up(sizeof(Header), 64);
  const std::size_t records = round_up(blocks + std::size_t{o.max_blocks} * sizeof(BlockDesc), 64);
  return round_up(records + std::size_t{o.max_references} * sizeof(RefRecord), 4096);
}

void PoolCore::format(Header& h, const PoolOptions& o, std::size_t control_size) {
  // A process may attach while this runs: `magic` is written last (release) and read first (acquire), and
  // nothing else writes it.
  static_assert(offsetof(Header, magic) == 0);
  std::memset(reinterpret_cast<std::byte*>(&h) + sizeof h.magic, 0, sizeof h - sizeof h.magic);
  h.version = kVersion;
  h.kind = static_cast<std::uint32_t>(o.kind);
  h.max_blocks = o.max_blocks;
  h.max_records = o.max_references;
  h.max_segments = std::min(o.max_segments, kMaxSegments);
  h.segment_size = round_up(std::max<std::uint64_t>(o.segment_size, 4096), 4096);
  h.blocks_offset = round_up(sizeof(Header), 64);
  h.records_offset = round_up(h.blocks_offset + std::size_t{o.max_blocks} * sizeof(BlockDesc), 64);
  h.control_size = control_size;
  h.owner_slot = 0;
  h.fl_bitmap = 0;
  for (auto& row : h.heads) std::fill(std::begin(row), std::end(row), kNone);
  std::fill(std::begin(h.quick_heads), std::end(h.quick_heads), kNone);
  h.unused_head = kNone;
  h.free_record_head = kNone;
  h.next_serial = 1;
  for (;;) {
    std::uint64_t id = 0;
    if (::getrandom(&id, sizeof id, 0) == sizeof id && id != 0) {
      h.pool_id = id;
      break;
    }
  }
  pthread_mutexattr_t attr;
  ::pthread_mutexattr_init(&attr);
  ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  sys_errno_result("pthread_mutex_init", [&] { return ::pthread_mutex_init(&h.mutex, &attr); }, "attr",
                   "process-shared, robust");
  ::pthread_mutexattr_destroy(&attr);
  // The owner takes slot 0.
  h.processes[0].pid = ::getpid();
  h.processes[0].start_time = own_start_time("SharedMemoryPool::create");
  h.processes[0].state = slot_live;
  h.process_count = 1;
  __atomic_store_n(&h.magic, kMagic, __ATOMIC_RELEASE);
}

bool PoolCore::formatted(const Header& h, std::size_t control_size) noexcept {
  return __atomic_load_n(&h.magic, __ATOMIC_ACQUIRE) == kMagic && h.version == kVersion &&
         h.control_size == control_size;
}

PoolCore::PoolCore(SharedMemory control, bool owner) : control_(std::move(control)), owner_(owner) {
  if (control_.size() < sizeof(Header)) {
    throw InvalidArgument(fmt::format("SharedMemoryPool: segment {} ({} bytes) is too small to be a pool", control_.name(),
                                      control_.size()));
  }
  h_ = reinterpret_cast<Header*>(control_.data());
  if (!formatted(*h_, control_.size())) {
    throw InvalidArgument(fmt::format("SharedMemoryPool: segment {} is not an mpaio pool (version {})", control_.name(),
                                      kVersion));
  }
  blocks_ = reinterpret_cast<BlockDesc*>(control_.data() + h_->blocks_offset);
  records_ = reinterpret_cast<RefRecord*>(control_.data() + h_->records_offset);
  if (owner_) {
    slot_ = 0;
    epoch_.store(pool_fork_epoch.load(), std::memory_order_release);
  }
  add_local_pool(*this);
}

PoolCore::~PoolCore() {
  watcher_.reset();  // the thread reads the control segment
  remove_local_pool(*this);
  if (owner_ && epoch_ == pool_fork_epoch.load()) {
    for (std::uint32_t s = 0; s < h_->segment_count && s < kMaxSegments; ++s) {
      if (h_->segments[s].kind == static_cast<std::uint32_t>(SegmentKind::named)) ::shm_unlink(h_->segments[s].name);
    }
  }
  // A process that attached leaves the pool: it leaves the state a reclaim of it would (what it holds and
  // what is in flight to it released, what it sent orphaned), and frees its slot.
  if (!owner_ && slot_ != kNone && epoch_ == pool_fork_epoch.load()) {
    try {
      Locked l(*this);
      vacate_slot(slot_, false);
    } catch (...) {
    }
  }
}

void PoolCore::register_self() {
  std::lock_guard registering(register_mutex_);
  const std::uint64_t epoch = pool_fork_epoch.load();
  if (epoch_.load(std::memory_order_relaxed) == epoch) return;  // another thread of this process did it
  const pid_t pid = ::getpid();
  const std::uint64_t start = own_start_time("SharedMemoryPool: registering this process");
  {
    // In a child of fork() everything this object holds is the parent's: never unlink a name from here.
    std::lock_guard local(local_mutex_);
    for (auto& segment : created_) segment->keep();
    control_.keep();
    owner_ = pid == owner_pid() ? owner_ : false;
  }
  {
    Locked l(*this);
    std::uint32_t free_slot = kNone;
    for (std::uint32_t i = 0; i < kMaxProcesses; ++i) {
      const ProcessSlot& s = h_->processes[i];
      if (s.state == slot_live && s.pid == pid && s.start_time == start) {  // registered on our behalf
        slot_ = i;
        epoch_.store(epoch, std::memory_order_release);
        return;
      }
      if (s.state == slot_free && free_slot == kNone) free_slot = i;
    }
    if (free_slot == kNone) {
      throw PoolExhausted(fmt::format("SharedMemoryPool {}: all {} process slots are taken (call reclaim_dead())",
                                      name(), kMaxProcesses), 0, free_bytes());
    }
    take_slot(free_slot, pid, start);
    slot_ = free_slot;
    epoch_.store(epoch, std::memory_order_release);
  }
  PoolWatcher::notify(h_->pool_id);  // the owner's watcher opens a pidfd for this process
}

std::uint32_t PoolCore::slot_of(pid_t pid) {
  if (pid == 0 || pid == owner_pid()) return h_->owner_slot;
  const ProcessStatus status = process_status(pid);
  if (status.state == ProcessStatus::State::dead) {
    throw InvalidArgument(fmt::format("SharedMemoryPool::send: no live process {}", pid));
  }
  if (status.state == ProcessStatus::State::unknown) {
    throw unreadable_proc(pid, status, fmt::format("SharedMemoryPool::send: cannot tell whether receiver {} is alive", pid));
  }
  const std::uint64_t start = status.start_time;
  std::uint32_t free_slot = kNone;
  {
    Locked l(*this);
    for (std::uint32_t i = 0; i < kMaxProcesses; ++i) {
      const ProcessSlot& s = h_->processes[i];
      if (s.state == slot_live && s.pid == pid && s.start_time == start) return i;
      if (s.state == slot_free && free_slot == kNone) free_slot = i;
    }
    if (free_slot == kNone) throw PoolExhausted(fmt::format("SharedMemoryPool {}: process slots full", name()), 0, 0);
    take_slot(free_slot, pid, start);
  }
  PoolWatcher::notify(h_->pool_id);
  return free_slot;
}

void PoolCore::take_slot(std::uint32_t slot, pid_t pid, std::uint64_t start_time) {
  set(h_->processes[slot].pid, static_cast<std::int32_t>(pid));
  set(h_->processes[slot].start_time, start_time);
  set(h_->processes[slot].state, std::uint32_t{slot_live});
  set(h_->process_count, h_->process_count + 1);
}

PoolCore::Slots PoolCore::process_slots() {
  Slots out{};
  Locked l(*this);
  std::copy(std::begin(h_->processes), std::end(h_->processes), out.slots.begin());
  out.owner = h_->owner_slot;
  return out;
}

bool PoolCore::watching() const noexcept { return watcher_ != nullptr && watcher_->running(); }

bool PoolCore::start_watcher() {
  if (!owner_ || watcher_ || !PoolWatcher::supported()) return watcher_ != nullptr;
  watcher_ = std::make_unique<PoolWatcher>(*this);
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Segments

const std::string& PoolCore::segment_name(std::uint32_t segment) {
  std::lock_guard local(local_mutex_);
  if (names_[segment].empty()) names_[segment] = h_->segments[segment].name;
  return names_[segment];
}

SegmentRecord PoolCore::segment_record(std::uint32_t segment) {
  Locked l(*this);
  if (segment >= h_->segment_count) throw PoolCorrupted(fmt::format("pool {}: no segment {}", name(), segment));
  return h_->segments[segment];
}

std::byte* PoolCore::map_segment(std::uint32_t segment) {
  SegmentRecord rec = segment_record(segment);
  std::unique_ptr<SharedMemory> attached;
  std::unique_ptr<ProcFdSegment> opened;
  for (;;) {
    inject(PoolFaultPoint::segment_record_read);
    try {
      if (rec.kind == static_cast<std::uint32_t>(SegmentKind::named)) {
        attached = std::make_unique<SharedMemory>(SharedMemory::attach(rec.name, Access::read_write));
      } else {
        opened = std::make_unique<ProcFdSegment>(rec.name, rec.holder_pid, rec.holder_fd, rec.size);
      }
      break;
    } catch (const SystemError& e) {
      // The owner adopts a segment another process grew by making its record anonymous, then unlinking its
      // name: a record read as named just before finds no name. Read it again: the owner's descriptor
      // reaches the segment now.
      if (rec.kind != static_cast<std::uint32_t>(SegmentKind::named) || e.code() != std::errc::no_such_file_or_directory) {
        throw;
      }
      const SegmentRecord now = segment_record(segment);
      if (now.kind == rec.kind) throw;
      rec = now;
    }
  }
  std::lock_guard local(local_mutex_);
  // Another thread may have mapped it meanwhile: keep the first mapping (this one goes after the unlock).
  if (std::byte* base = bases_[segment].load(std::memory_order_acquire)) return base;
  std::byte* const base = attached ? attached->data() : opened->data();
  if (attached) {
    created_.push_back(std::move(attached));
  } else {
    opened_.push_back(std::move(opened));
  }
  names_[segment] = rec.name;
  bases_[segment].store(base, std::memory_order_release);
  return base;
}

void PoolCore::adopt_segments() {
  std::uint32_t count = 0;
  {
    Locked l(*this);
    count = h_->segment_count;
  }
  for (std::uint32_t s = 0; s < count; ++s) {
    try {
      base_of(s);
    } catch (const Error&) {
      continue;  // its creator died before anyone mapped it: its blocks are lost until the pool goes
    }
    if (h_->kind != static_cast<std::uint32_t>(SegmentKind::anonymous)) continue;
    SharedMemory* held = nullptr;  // created_ only grows: the pointer stays good after the unlock
    {
      std::lock_guard local(local_mutex_);
      for (auto& seg : created_) {
        if (seg->name() == names_[s] && seg->kind() == SegmentKind::named) held = seg.get();
      }
    }
    if (held == nullptr) continue;
    {
      Locked l(*this);
      if (h_->segments[s].kind != static_cast<std::uint32_t>(SegmentKind::named)) continue;
      set(h_->segments[s].holder_pid, static_cast<std::int32_t>(::getpid()));
      set(h_->segments[s].holder_fd, held->fd());
      set(h_->segments[s].kind, static_cast<std::uint32_t>(SegmentKind::anonymous));
    }
    ::shm_unlink(held->name().c_str());  // reachable through /proc/<owner>/fd from now on
  }
  known_segments_.store(count, std::memory_order_relaxed);
}

bool PoolCore::grow(std::uint64_t size) {
  const std::uint64_t bytes = std::max<std::uint64_t>(h_->segment_size, segment_for(size));
  {
    Locked l(*this);
    if (h_->segment_count >= h_->max_segments) return false;
  }
  // A segment another process creates must outlive it: it is created named, after the owner's pid (so that
  // remove_stale_segments() leaves it while the pool lives), so that anyone can open it until the owner
  // adopts it (anonymous pools: maps it, then unlinks the name). Its name is kept only once it is in the
  // table: a growth that fails below removes it.
  const auto kind = owner_ ? static_cast<SegmentKind>(h_->kind) : SegmentKind::named;
  auto segment = std::make_unique<SharedMemory>(
      SharedMemory::create(bytes, {.kind = kind, .name_pid = owner_ ? 0 : owner_pid()}));
  if (segment->name().size() >= sizeof(SegmentRecord::name)) {
    throw InvalidArgument(fmt::format("SharedMemoryPool: segment name {} is too long", segment->name()));
  }
  std::uint32_t index = 0;
  {
    Locked l(*this);
    if (h_->segment_count >= h_->max_segments) return false;  // another process took the last one
    const std::uint32_t d = new_desc();
    if (d == kNone) throw PoolExhausted(fmt::format("SharedMemoryPool {}: block table full", name()), size, free_bytes());
    index = h_->segment_count;
    // The name and fd are written before segment_count makes the record visible; no journal needed for them.
    SegmentRecord& rec = h_->segments[index];
    std::memset(rec.name, 0, sizeof rec.name);
    std::memcpy(rec.name, segment->name().data(), segment->name().size());
    rec.size = bytes;
    rec.holder_pid = ::getpid();
    rec.holder_fd = segment->fd();
    rec.kind = static_cast<std::uint32_t>(kind);
    set(rec.first_block, d);
    BlockDesc& b = blocks_[d];
    set(b.offset, std::uint64_t{0});
    set(b.size, bytes);
    set(b.segment, index);
    set(b.phys_prev, kNone);
    set(b.phys_next, kNone);
    insert_free(d);
    set(h_->bytes_total, h_->bytes_total + bytes);
    set(h_->segment_count, index + 1);
  }
  if (!owner_) segment->keep();
  std::lock_guard local(local_mutex_);
  names_[index] = segment->name();
  bases_[index].store(segment->data(), std::memory_order_release);
  created_.push_back(std::move(segment));
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// The allocator (under the lock)

std::uint32_t PoolCore::new_desc() {
  const std::uint32_t d = h_->unused_head;
  if (d != kNone) {
    set(h_->unused_head, blocks_[d].link_next);
    return d;
  }
  if (h_->blocks_hwm >= h_->max_blocks) return kNone;
  const std::uint32_t fresh = h_->blocks_hwm;
  set(h_->blocks_hwm, fresh + 1);
  return fresh;
}

void PoolCore::retire_desc(std::uint32_t d) {
  set(blocks_[d].state, std::uint32_t{block_unused});
  set(blocks_[d].generation, blocks_[d].generation + 1);
  set(blocks_[d].link_next, h_->unused_head);
  set(h_->unused_head, d);
}

void PoolCore::insert_free(std::uint32_t b) {
  unsigned fl = 0, sl = 0;
  mapping_insert(blocks_[b].size, fl, sl);
  const std::uint32_t head = h_->heads[fl][sl];
  set(blocks_[b].state, std::uint32_t{block_free});
  set(blocks_[b].link_prev, kNone);
  set(blocks_[b].link_next, head);
  if (head != kNone) set(blocks_[head].link_prev, b);
  set(h_->heads[fl][sl], b);
  if ((h_->sl_bitmap[fl] & (1u << sl)) == 0) set(h_->sl_bitmap[fl], h_->sl_bitmap[fl] | (1u << sl));
  if ((h_->fl_bitmap & (std::uint64_t{1} << fl)) == 0) set(h_->fl_bitmap, h_->fl_bitmap | (std::uint64_t{1} << fl));
}

void PoolCore::remove_free(std::uint32_t b) {
  unsigned fl = 0, sl = 0;
  mapping_insert(blocks_[b].size, fl, sl);
  const std::uint32_t prev = blocks_[b].link_prev;
  const std::uint32_t next = blocks_[b].link_next;
  if (next != kNone) set(blocks_[next].link_prev, prev);
  if (prev != kNone) {
    set(blocks_[prev].link_next, next);
  } else {
    set(h_->heads[fl][sl], next);
    if (next == kNone) {
      set(h_->sl_bitmap[fl], h_->sl_bitmap[fl] & ~(1u << sl));
      if (h_->sl_bitmap[fl] == 0) set(h_->fl_bitmap, h_->fl_bitmap & ~(std::uint64_t{1} << fl));
    }
  }
}

std::uint32_t PoolCore::take_block(std::uint64_t size) {
  if (size <= kQuickMax) {
    const unsigned cls = static_cast<unsigned>(size / kAlign) - 1;
    const std::uint32_t b = h_->quick_heads[cls];
    if (b != kNone) {
      set(h_->quick_heads[cls], blocks_[b].link_next);
      set(h_->quick_count[cls], h_->quick_count[cls] - 1);
      set(blocks_[b].state, std::uint32_t{block_used});
      inject(PoolFaultPoint::block_taken);
      return b;
    }
  }
  unsigned fl = 0, sl = 0;
  mapping_search(size, fl, sl);
  if (fl >= kFlCount) return kNone;
  std::uint32_t sl_map = h_->sl_bitmap[fl] & (~0u << sl);
  if (sl_map == 0) {
    const std::uint64_t fl_map = fl + 1 < 64 ? h_->fl_bitmap & (~std::uint64_t{0} << (fl + 1)) : 0;
    if (fl_map == 0) return kNone;
    fl = static_cast<unsigned>(std::countr_zero(fl_map));
    sl_map = h_->sl_bitmap[fl];
  }
  sl = static_cast<unsigned>(std::countr_zero(sl_map));
  const std::uint32_t b = h_->heads[fl][sl];
  remove_free(b);
  inject(PoolFaultPoint::block_taken);
  BlockDesc& blk = blocks_[b];
  if (blk.size - size >= kAlign) {
    const std::uint32_t r = new_desc();
    if (r != kNone) {
      BlockDesc& rest = blocks_[r];
      set(rest.offset, blk.offset + size);
      set(rest.size, blk.size - size);
      set(rest.segment, blk.segment);
      set(rest.refs, std::uint32_t{0});
      set(rest.phys_prev, b);
      set(rest.phys_next, blk.phys_next);
      if (blk.phys_next != kNone) set(blocks_[blk.phys_next].phys_prev, r);
      set(blk.phys_next, r);
      set(blk.size, size);
      inject(PoolFaultPoint::block_split);
      insert_free(r);
    }
  }
  set(blk.state, std::uint32_t{block_used});
  return b;
}

void PoolCore::give_back(std::uint32_t b) {
  BlockDesc& blk = blocks_[b];
  set(blk.generation, blk.generation + 1);
  set(h_->bytes_in_use, h_->bytes_in_use - blk.size);
  set(h_->blocks_in_use, h_->blocks_in_use - 1);
  if (blk.size <= kQuickMax) {
    const unsigned cls = static_cast<unsigned>(blk.size / kAlign) - 1;
    if (h_->quick_count[cls] < kQuickLimit) {
      set(blk.state, std::uint32_t{block_quick});
      set(blk.link_next, h_->quick_heads[cls]);
      set(h_->quick_heads[cls], b);
      set(h_->quick_count[cls], h_->quick_count[cls] + 1);
      return;
    }
  }
  tlsf_free(b);
}

void PoolCore::tlsf_free(std::uint32_t b) {
  const std::uint32_t prev = blocks_[b].phys_prev;
  if (prev != kNone && blocks_[prev].state == block_free) {
    remove_free(prev);
    const std::uint32_t next = blocks_[b].phys_next;
    set(blocks_[prev].size, blocks_[prev].size + blocks_[b].size);
    set(blocks_[prev].phys_next, next);
    if (next != kNone) set(blocks_[next].phys_prev, prev);
    retire_desc(b);
    inject(PoolFaultPoint::block_merged);
    b = prev;
  }
  const std::uint32_t next = blocks_[b].phys_next;
  if (next != kNone && blocks_[next].state == block_free) {
    remove_free(next);
    const std::uint32_t after = blocks_[next].phys_next;
    set(blocks_[b].size, blocks_[b].size + blocks_[next].size);
    set(blocks_[b].phys_next, after);
    if (after != kNone) set(blocks_[after].phys_prev, b);
    retire_desc(next);
    inject(PoolFaultPoint::block_merged);
  }
  insert_free(b);
}

void PoolCore::flush_quick() {
  Locked l(*this);
  for (unsigned cls = 0; cls < kQuickClasses; ++cls) {
    while (h_->quick_heads[cls] != kNone) {
      const std::uint32_t b = h_->quick_heads[cls];
      set(h_->quick_heads[cls], blocks_[b].link_next);
      set(h_->quick_count[cls], h_->quick_count[cls] - 1);
      tlsf_free(b);
      commit();
    }
  }
}

std::uint32_t PoolCore::new_record(std::uint32_t block, std::uint32_t state, std::uint32_t holder) {
  std::uint32_t r = h_->free_record_head;
  if (r != kNone) {
    set(h_->free_record_head, records_[r].next_free);
  } else {
    if (h_->records_hwm >= h_->max_records) {
      throw PoolExhausted(fmt::format("SharedMemoryPool {}: all {} reference records are in use", name(),
                                      h_->max_records), 0, free_bytes());
    }
    r = h_->records_hwm;
    set(h_->records_hwm, r + 1);
  }
  RefRecord& rec = records_[r];
  set(rec.serial, h_->next_serial);
  set(h_->next_serial, h_->next_serial + 1);
  set(rec.block, block);
  set(rec.holder, holder);
  set(rec.state, state);
  set(rec.next_free, state == record_in_flight ? slot_ : kNone);  // in flight: the sender's slot
  set(blocks_[block].refs, blocks_[block].refs + 1);
  if (state == record_held) {
    set(h_->references, h_->references + 1);
  } else {
    set(h_->in_flight, h_->in_flight + 1);
  }
  inject(PoolFaultPoint::reference_taken);
  return r;
}

void PoolCore::release_record(std::uint32_t r) {
  RefRecord& rec = records_[r];
  const std::uint32_t b = rec.block;
  if (rec.state == record_held) {
    set(h_->references, h_->references - 1);
  } else {
    set(h_->in_flight, h_->in_flight - 1);
  }
  set(rec.state, std::uint32_t{record_free});
  set(rec.next_free, h_->free_record_head);
  set(h_->free_record_head, r);
  inject(PoolFaultPoint::reference_released);
  set(blocks_[b].refs, blocks_[b].refs - 1);
  if (blocks_[b].refs == 0) give_back(b);
}

PoolBlock PoolCore::block_of(std::uint32_t r) {
  const BlockDesc& b = blocks_[records_[r].block];
  return PoolBlock{r, records_[r].block, b.generation, b.segment, b.offset, b.size, nullptr};
}

void PoolCore::check_record(std::uint32_t r, std::uint32_t state, const PoolTransfer* t, const char* what) {
  const bool ok = r < h_->records_hwm && records_[r].state == state &&
                  (t == nullptr ? records_[r].holder == slot_
                                : records_[r].serial == t->serial && records_[r].block == t->array.block);
  if (!ok) {
    if (t != nullptr) {
      throw StalePoolReference(fmt::format("SharedMemoryPool {}: {}: transfer token (record {}, serial {}, block {}) was "
                                           "already adopted or dropped", name(), what, r, t->serial, t->array.block));
    }
    throw InvalidArgument(fmt::format("SharedMemoryPool {}: {}: reference record {} is not held by this process", name(),
                                      what, r));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Operations

void PoolCore::check_extent(const PoolArrayRef& ref, const char* what) {
  if (ref.ndim > kPoolMaxDims) {
    throw InvalidArgument(fmt::format("SharedMemoryPool {}: {}: the reference has ndim {}, at most {}", name(), what,
                                      ref.ndim, kPoolMaxDims));
  }
  std::uint64_t bytes = ref.dtype.itemsize;
  for (std::uint32_t i = 0; i < ref.ndim; ++i) {
    if (__builtin_mul_overflow(bytes, ref.shape[i], &bytes)) {
      throw InvalidArgument(fmt::format("SharedMemoryPool {}: {}: the reference's shape[{}] = {} makes its byte size "
                                        "overflow", name(), what, i, ref.shape[i]));
    }
  }
  if (ref.segment != blocks_[ref.block].segment) {
    throw InvalidArgument(fmt::format("SharedMemoryPool {}: {}: the reference names segment {}, but block {} is in "
                                      "segment {}", name(), what, ref.segment, ref.block, blocks_[ref.block].segment));
  }
  std::uint64_t end = 0;
  const std::uint64_t size = blocks_[ref.block].size;
  if (__builtin_add_overflow(ref.offset, bytes, &end) || end > size) {
    throw InvalidArgument(fmt::format("SharedMemoryPool {}: {}: the reference's offset {} + {} bytes reaches past "
                                      "block {} ({} bytes)", name(), what, ref.offset, bytes, ref.block, size));
  }
}

void PoolCore::map_or_release(PoolBlock& out) {
  try {
    out.data = base_of(out.segment) + out.offset;
  } catch (...) {
    release(out.record);
    throw;
  }
}

PoolBlock PoolCore::allocate(std::size_t nbytes) {
  if (nbytes > kPoolMaxArrayBytes) {
    throw InvalidArgument(fmt::format("SharedMemoryPool::allocate: an array of {} bytes is larger than the largest "
                                      "block ({} bytes)", nbytes, kPoolMaxArrayBytes));
  }
  ensure_slot();
  adopt_new_segments();
  const std::uint64_t size = round_up(std::max<std::uint64_t>(nbytes, 1), kAlign);
  bool segments_full = false;
  for (int attempt = 0;; ++attempt) {
    PoolBlock out{};
    bool found = false;
    {
      Locked l(*this);
      const std::uint32_t b = take_block(size);
      if (b != kNone) {
        set(h_->bytes_in_use, h_->bytes_in_use + blocks_[b].size);
        set(h_->blocks_in_use, h_->blocks_in_use + 1);
        const std::uint32_t r = new_record(b, record_held, slot_);
        out = block_of(r);
        found = true;
      }
    }
    if (found) {
      map_or_release(out);
      return out;
    }
    switch (attempt) {
      case 0: flush_quick(); break;       // cached small blocks back into TLSF (coalesced)
      case 1: reclaim_dead(); break;      // what dead processes held
      // A new segment, twice: another process may take the first. When the table is full, look again all
      // the same: a process that grew it meanwhile, or freed blocks, may have made room.
      case 2: case 3: segments_full = !grow(size); break;
      default:
        if (segments_full) {
          throw PoolExhausted(fmt::format("SharedMemoryPool {}: cannot allocate {} bytes: {} of {} bytes free and all "
                                          "{} segments in use", name(), size, free_bytes(), h_->bytes_total,
                                          h_->max_segments), size, free_bytes());
        }
        throw PoolExhausted(fmt::format("SharedMemoryPool {}: cannot allocate {} bytes ({} bytes free)", name(), size,
                                        free_bytes()), size, free_bytes());
    }
  }
}

PoolBlock PoolCore::attach(const PoolArrayRef& ref) {
  ensure_slot();
  adopt_new_segments();
  if (ref.pool_id != h_->pool_id) {
    throw StalePoolReference(fmt::format("SharedMemoryPool {}: the reference belongs to pool {:016x}, not {:016x}", name(),
                                         ref.pool_id, h_->pool_id));
  }
  PoolBlock out{};
  {
    Locked l(*this);
    const bool live = ref.block < h_->blocks_hwm && blocks_[ref.block].state == block_used &&
                      blocks_[ref.block].generation == ref.generation && blocks_[ref.block].segment == ref.segment;
    if (!live) {
      throw StalePoolReference(fmt::format("SharedMemoryPool {}: block {} of generation {} was freed (it is now of "
                                           "generation {}): the array no longer exists", name(), ref.block,
                                           ref.generation, ref.block < h_->blocks_hwm ? blocks_[ref.block].generation : 0));
    }
    check_extent(ref, "attach");
    out = block_of(new_record(ref.block, record_held, slot_));
  }
  map_or_release(out);
  return out;
}

void PoolCore::release(std::uint32_t record) noexcept {
  try {
    Locked l(*this);
    if (record < h_->records_hwm && records_[record].state == record_held && records_[record].holder == slot_) {
      release_record(record);
    }
  } catch (...) {
  }
}

PoolTransfer PoolCore::send(std::uint32_t record, const PoolArrayRef& ref, pid_t receiver) {
  ensure_slot();
  const std::uint32_t to = slot_of(receiver);
  Locked l(*this);
  check_record(record, record_held, nullptr, "send");
  const std::uint32_t r = new_record(records_[record].block, record_in_flight, to);
  return PoolTransfer{ref, r, 0, records_[r].serial};
}

PoolBlock PoolCore::adopt(const PoolTransfer& t) {
  ensure_slot();
  adopt_new_segments();
  if (t.array.pool_id != h_->pool_id) {
    throw StalePoolReference(fmt::format("SharedMemoryPool {}: the transfer belongs to pool {:016x}", name(), t.array.pool_id));
  }
  for (;;) {
    {
      Locked l(*this);
      check_record(t.record, record_in_flight, &t, "adopt");
      check_extent(t.array, "adopt");  // the token's segment is its block's
      // The token is taken only once its segment is mapped here: if this process cannot map it, the token
      // stays in flight, untouched, for another try or another process.
      if (std::byte* base = bases_[t.array.segment].load(std::memory_order_acquire)) {
        set(records_[t.record].holder, slot_);
        set(records_[t.record].state, std::uint32_t{record_held});
        set(records_[t.record].next_free, kNone);
        set(h_->in_flight, h_->in_flight - 1);
        set(h_->references, h_->references + 1);
        PoolBlock out = block_of(t.record);
        out.data = base + out.offset;
        return out;
      }
    }
    (void)map_segment(t.array.segment);
  }
}

void PoolCore::drop(const PoolTransfer& t) {
  ensure_slot();
  Locked l(*this);
  check_record(t.record, record_in_flight, &t, "drop");
  release_record(t.record);
}

void PoolCore::discard(const PoolTransfer& t) noexcept {
  try {
    if (t.array.pool_id == h_->pool_id) drop(t);
  } catch (...) {
  }
}

std::size_t PoolCore::reclaim_dead() {
  ensure_slot();
  if (owner_) adopt_segments();
  std::vector<std::pair<std::uint32_t, ProcessSlot>> candidates;
  {
    Locked l(*this);
    for (std::uint32_t i = 0; i < kMaxProcesses; ++i) {
      if (i != slot_ && h_->processes[i].state == slot_live) candidates.emplace_back(i, h_->processes[i]);
    }
  }
  std::size_t released = 0;
  for (const auto& [i, seen] : candidates) {
    // Only a certain death counts: a process that /proc cannot tell about now (EMFILE...) may be alive.
    if (!process_status(seen.pid).gone(seen.start_time)) continue;
    released += reclaim_slot(i, seen.pid, seen.start_time);
  }
  return released;
}

std::size_t PoolCore::reclaim_slot(std::uint32_t slot, std::int32_t pid, std::uint64_t start_time) {
  if (slot >= kMaxProcesses) return 0;
  Locked l(*this);
  const ProcessSlot& now = h_->processes[slot];
  if (now.state != slot_live || now.pid != pid || now.start_time != start_time) return 0;
  return vacate_slot(slot, true);
}

std::size_t PoolCore::vacate_slot(std::uint32_t slot, bool dead) {
  std::size_t released = 0;
  for (std::uint32_t r = 0; r < h_->records_hwm; ++r) {
    if (records_[r].state == record_in_flight && records_[r].next_free == slot) {
      set(records_[r].next_free, kNone);  // its sender is gone: an orphan (release_orphaned_transfers)
      commit();
    }
    if (records_[r].state != record_free && records_[r].holder == slot) {
      release_record(r);
      if (dead) set(h_->reclaimed, h_->reclaimed + 1);
      commit();  // one reference per transaction: the journal stays small
      ++released;
    }
  }
  set(h_->processes[slot].state, std::uint32_t{slot_free});
  set(h_->process_count, h_->process_count - 1);
  return released;
}

std::size_t PoolCore::release_orphaned_transfers() {
  ensure_slot();
  Locked l(*this);
  std::size_t released = 0;
  for (std::uint32_t r = 0; r < h_->records_hwm; ++r) {
    if (records_[r].state == record_in_flight && records_[r].next_free == kNone) {
      release_record(r);
      commit();
      ++released;
    }
  }
  return released;
}

PoolStats PoolCore::stats() {
  Locked l(*this);
  return PoolStats{h_->bytes_total, h_->bytes_in_use, h_->blocks_in_use, h_->references, h_->in_flight,
                   h_->segment_count, h_->process_count, h_->recoveries, h_->reclaimed};
}

void PoolCore::check_invariants() {
  Locked l(*this);
  auto fail = [&](const std::string& what) { throw PoolCorrupted(fmt::format("pool {}: {}", name(), what)); };
  if (h_->journal_len != 0) fail(fmt::format("journal holds {} entries outside a transaction", h_->journal_len));
  const std::uint32_t nblocks = h_->blocks_hwm;
  std::vector<std::uint8_t> seen(nblocks, 0);
  std::uint64_t total = 0, in_use = 0, used_blocks = 0, free_count = 0, quick_total = 0;
  for (std::uint32_t s = 0; s < h_->segment_count; ++s) {
    const SegmentRecord& seg = h_->segments[s];
    std::uint64_t expect = 0;
    std::uint32_t prev = kNone;
    bool prev_free = false;
    for (std::uint32_t b = seg.first_block; b != kNone; b = blocks_[b].phys_next) {
      if (b >= nblocks || seen[b]) fail(fmt::format("segment {}: chain reaches block {} twice or out of range", s, b));
      seen[b] = 1;
      const BlockDesc& d = blocks_[b];
      if (d.segment != s || d.offset != expect || d.phys_prev != prev || d.size == 0 || d.size % kAlign != 0) {
        fail(fmt::format("segment {}: block {} (offset {}, size {}, prev {}) breaks the chain at offset {}", s, b, d.offset,
                         d.size, d.phys_prev, expect));
      }
      if (d.state == block_free) {
        if (prev_free) fail(fmt::format("segment {}: free blocks {} and {} are not merged", s, prev, b));
        ++free_count;
      } else if (d.state == block_used) {
        in_use += d.size;
        ++used_blocks;
      } else if (d.state == block_quick) {
        ++quick_total;
      } else {
        fail(fmt::format("segment {}: block {} in the chain is an unused descriptor", s, b));
      }
      prev_free = d.state == block_free;
      expect += d.size;
      prev = b;
    }
    if (expect != seg.size) fail(fmt::format("segment {}: blocks cover {} of {} bytes", s, expect, seg.size));
    total += seg.size;
  }
  if (total != h_->bytes_total) fail(fmt::format("bytes_total {} but segments hold {}", h_->bytes_total, total));
  if (in_use != h_->bytes_in_use) fail(fmt::format("bytes_in_use {} but used blocks hold {}", h_->bytes_in_use, in_use));
  if (used_blocks != h_->blocks_in_use) fail(fmt::format("blocks_in_use {} but {} used blocks", h_->blocks_in_use, used_blocks));
  std::uint64_t listed = 0;
  for (unsigned fl = 0; fl < kFlCount; ++fl) {
    if (((h_->fl_bitmap >> fl) & 1) != (h_->sl_bitmap[fl] != 0 ? 1u : 0u)) fail(fmt::format("first-level bit {} is wrong", fl));
    for (unsigned sl = 0; sl < kSlCount; ++sl) {
      const bool bit = (h_->sl_bitmap[fl] >> sl) & 1;
      if (bit != (h_->heads[fl][sl] != kNone)) fail(fmt::format("second-level bit {}/{} is wrong", fl, sl));
      std::uint32_t prev = kNone;
      for (std::uint32_t b = h_->heads[fl][sl]; b != kNone; b = blocks_[b].link_next) {
        unsigned f = 0, s2 = 0;
        if (b >= nblocks || blocks_[b].state != block_free || blocks_[b].link_prev != prev) {
          fail(fmt::format("free list {}/{}: block {} is not a free block linked back to {}", fl, sl, b, prev));
        }
        mapping_insert(blocks_[b].size, f, s2);
        if (f != fl || s2 != sl) fail(fmt::format("block {} of {} bytes is in free list {}/{}", b, blocks_[b].size, fl, sl));
        if (++listed > nblocks) fail("a free list loops");
        prev = b;
      }
    }
  }
  if (listed != free_count) fail(fmt::format("{} free blocks in the segments, {} in the free lists", free_count, listed));
  std::uint64_t quick_listed = 0;
  for (unsigned cls = 0; cls < kQuickClasses; ++cls) {
    std::uint32_t n = 0;
    for (std::uint32_t b = h_->quick_heads[cls]; b != kNone; b = blocks_[b].link_next) {
      if (b >= nblocks || blocks_[b].state != block_quick || blocks_[b].size != (cls + 1) * kAlign || ++n > nblocks) {
        fail(fmt::format("size class {}: block {} does not belong", cls, b));
      }
    }
    if (n != h_->quick_count[cls]) fail(fmt::format("size class {} counts {} but lists {}", cls, h_->quick_count[cls], n));
    quick_listed += n;
  }
  if (quick_listed != quick_total) fail(fmt::format("{} cached blocks in the segments, {} in the size classes", quick_total, quick_listed));
  std::vector<std::uint32_t> refs(nblocks, 0);
  std::uint64_t held = 0, flying = 0, free_records = 0;
  for (std::uint32_t r = 0; r < h_->records_hwm; ++r) {
    const RefRecord& rec = records_[r];
    if (rec.state == record_free) {
      ++free_records;
      continue;
    }
    if (rec.block >= nblocks || blocks_[rec.block].state != block_used) {
      fail(fmt::format("reference {} names block {}, which is not allocated", r, rec.block));
    }
    if (rec.holder >= kMaxProcesses || h_->processes[rec.holder].state != slot_live) {
      fail(fmt::format("reference {} belongs to process slot {}, which is free", r, rec.holder));
    }
    ++refs[rec.block];
    (rec.state == record_held ? held : flying) += 1;
  }
  for (std::uint32_t b = 0; b < nblocks; ++b) {
    if (blocks_[b].state == block_used && (refs[b] == 0 || refs[b] != blocks_[b].refs)) {
      fail(fmt::format("block {} counts {} references, {} records name it", b, blocks_[b].refs, refs[b]));
    }
  }
  if (held != h_->references || flying != h_->in_flight) {
    fail(fmt::format("counters say {} held and {} in flight, records say {} and {}", h_->references, h_->in_flight, held, flying));
  }
  std::uint64_t free_list = 0;
  for (std::uint32_t r = h_->free_record_head; r != kNone; r = records_[r].next_free) {
    if (r >= h_->records_hwm || records_[r].state != record_free || ++free_list > h_->records_hwm) fail("the free reference list is broken");
  }
  if (free_list != free_records) fail(fmt::format("{} free references, {} on the free list", free_records, free_list));
}

// ---------------------------------------------------------------------------------------------------------
// The functions PoolArray<T> calls

PoolBlock pool_allocate(PoolCore& core, std::size_t nbytes) { return core.allocate(nbytes); }
PoolBlock pool_attach(PoolCore& core, const PoolArrayRef& ref) { return core.attach(ref); }
void pool_release(PoolCore& core, std::uint32_t record) noexcept { core.release(record); }
PoolTransfer pool_send(PoolCore& core, std::uint32_t record, const PoolArrayRef& ref, pid_t receiver) {
  return core.send(record, ref, receiver);
}
PoolBlock pool_adopt(PoolCore& core, const PoolTransfer& transfer) { return core.adopt(transfer); }
void pool_discard(PoolCore& core, const PoolTransfer& transfer) noexcept { core.discard(transfer); }
std::uint64_t pool_id(const PoolCore& core) noexcept { return core.id(); }
const std::string& pool_segment_name(const PoolCore& core, std::uint32_t segment) {
  return const_cast<PoolCore&>(core).segment_name(segment);
}
}  // namespace mpaio::detail
