#include "pool/pool_core.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <iterator>

#include <fmt/format.h>

#include "os/process_status.hpp"
#include "pool/fault_injection.hpp"
#include "pool/local_pools.hpp"
#include "pool/pool_checker.hpp"
#include "pool/pool_watcher.hpp"
#include "pool/proc_fd_segment.hpp"

namespace mpaio::detail {

using namespace pool;

void set_pool_fault_hook(PoolFaultHook hook) noexcept { pool_fault_hook.store(hook); }

// ---------------------------------------------------------------------------------------------------------
// The lock

void PoolCore::recover() noexcept {
  journal_.undo();
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
    inject_fault(PoolFaultPoint::locked);
  }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;
  ~Locked() {
    if (std::uncaught_exceptions() > exceptions_) {
      core_.journal_.undo();
    } else {
      inject_fault(PoolFaultPoint::before_commit);
      core_.journal_.commit();
    }
    ::pthread_mutex_unlock(&core_.h_->mutex);
  }

 private:
  PoolCore& core_;
  int exceptions_;
};

// ---------------------------------------------------------------------------------------------------------
// Creation, registration

namespace {

/// The control header of `control`; throws InvalidArgument when the segment is no pool of this version.
ControlHeader& control_header(const SharedMemory& control) {
  if (control.size() < sizeof(ControlHeader)) {
    throw InvalidArgument(fmt::format("SharedMemoryPool: segment {} ({} bytes) is too small to be a pool", control.name(),
                                      control.size()));
  }
  auto& h = *reinterpret_cast<ControlHeader*>(control.data());
  if (!is_formatted(h, control.size())) {
    throw InvalidArgument(fmt::format("SharedMemoryPool: segment {} is not an mpaio pool (version {})", control.name(),
                                      kVersion));
  }
  return h;
}

}  // namespace

PoolCore::PoolCore(SharedMemory control, bool owner)
    : control_(std::move(control)),
      h_(&control_header(control_)),
      blocks_(reinterpret_cast<BlockDesc*>(control_.data() + h_->blocks_offset)),
      records_(reinterpret_cast<RefRecord*>(control_.data() + h_->records_offset)),
      journal_(std::span(control_.data(), control_.size()), h_->journal_length, h_->journal),
      allocator_(h_->tlsf, std::span(blocks_, h_->max_blocks), journal_),
      owner_(owner) {
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
  if (!owner_ && own_slot() != kNone) {
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
    inject_fault(PoolFaultPoint::segment_record_read);
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
  const std::uint64_t bytes = std::max<std::uint64_t>(h_->segment_size, segment_bytes_for(size));
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
    index = h_->segment_count;
    const std::uint32_t d = allocator_.add_segment(index, bytes);
    if (d == kNone) throw PoolExhausted(fmt::format("SharedMemoryPool {}: block table full", name()), size, free_bytes());
    // The name and fd are written before segment_count makes the record visible; no journal needed for them.
    SegmentRecord& rec = h_->segments[index];
    std::memset(rec.name, 0, sizeof rec.name);
    std::memcpy(rec.name, segment->name().data(), segment->name().size());
    rec.size = bytes;
    rec.holder_pid = ::getpid();
    rec.holder_fd = segment->fd();
    rec.kind = static_cast<std::uint32_t>(kind);
    set(rec.first_block, d);
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
// Blocks and references (under the lock)

void PoolCore::flush_quick() {
  Locked l(*this);
  while (allocator_.flush_one()) journal_.commit();  // one block per transaction: the journal stays small
}

std::uint32_t PoolCore::take_block(std::uint64_t size) {
  const std::uint32_t b = allocator_.take(size);
  if (b != kNone) {
    set(h_->bytes_in_use, h_->bytes_in_use + blocks_[b].size);
    set(h_->blocks_in_use, h_->blocks_in_use + 1);
  }
  return b;
}

void PoolCore::free_block(std::uint32_t b) {
  set(h_->bytes_in_use, h_->bytes_in_use - blocks_[b].size);
  set(h_->blocks_in_use, h_->blocks_in_use - 1);
  allocator_.give_back(b);
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
  inject_fault(PoolFaultPoint::reference_taken);
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
  inject_fault(PoolFaultPoint::reference_released);
  set(blocks_[b].refs, blocks_[b].refs - 1);
  if (blocks_[b].refs == 0) free_block(b);
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
    const bool live = ref.block < h_->tlsf.blocks_hwm && blocks_[ref.block].state == block_used &&
                      blocks_[ref.block].generation == ref.generation && blocks_[ref.block].segment == ref.segment;
    if (!live) {
      throw StalePoolReference(fmt::format("SharedMemoryPool {}: block {} of generation {} was freed (it is now of "
                                           "generation {}): the array no longer exists", name(), ref.block,
                                           ref.generation, ref.block < h_->tlsf.blocks_hwm ? blocks_[ref.block].generation : 0));
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
      // Its sender is gone: an orphan (release_orphaned_transfers) that still says whose it was.
      set(records_[r].next_free, gone_sender(h_->processes[slot].pid));
      journal_.commit();
    }
    if (records_[r].state != record_free && records_[r].holder == slot) {
      release_record(r);
      if (dead) set(h_->reclaimed, h_->reclaimed + 1);
      journal_.commit();  // one reference per transaction: the journal stays small
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
    if (records_[r].state == record_in_flight && is_orphan(records_[r].next_free)) {
      release_record(r);
      journal_.commit();
      ++released;
    }
  }
  return released;
}

std::uint32_t PoolCore::own_slot() const noexcept {
  return epoch_.load(std::memory_order_acquire) == pool_fork_epoch.load() ? slot_ : kNone;
}

std::size_t PoolCore::release_transfers_from(pid_t sender) {
  // Its pid may be another process's by now: a slot that names a live process of that pid is not its.
  const ProcessStatus now = process_status(sender);
  Locked l(*this);
  auto sent_by = [&](std::uint32_t from) {
    if (from == gone_sender(sender)) return true;
    if (from >= kMaxProcesses) return false;
    const ProcessSlot& s = h_->processes[from];
    return s.state == slot_live && s.pid == sender && !now.is(s.start_time);
  };
  // A child forked from this process that has not registered yet still holds its parent's slot number.
  const std::uint32_t ours = own_slot();
  std::size_t released = 0;
  for (std::uint32_t r = 0; r < h_->records_hwm; ++r) {
    const RefRecord& rec = records_[r];
    const bool to_us = rec.holder == h_->owner_slot || (ours != kNone && rec.holder == ours);
    if (rec.state == record_in_flight && to_us && sent_by(rec.next_free)) {
      release_record(r);
      journal_.commit();
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
  check_control(*h_, std::span(blocks_, h_->max_blocks), std::span(records_, h_->max_records), fmt::format("pool {}", name()));
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
