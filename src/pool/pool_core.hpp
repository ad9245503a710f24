#pragma once
// PoolCore: a SharedMemoryPool's operations (allocate, attach, send, adopt, reclaim...) in one process,
// over the shared control segment (control_segment.hpp) and this process's side of it (mappings, its
// slot). Under the pool's robust lock it composes the parts: every change goes through the UndoJournal,
// so that a process killed inside the locked section is rolled back by the next locker; blocks come from
// the TlsfAllocator; liveness from /proc and pidfds (os/process_status.hpp); the checker verifies it all.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mpaio/detail/pool_access.hpp"
#include "mpaio/shared_memory.hpp"
#include "mpaio/shared_memory_pool.hpp"
#include "pool/control_segment.hpp"
#include "pool/tlsf_allocator.hpp"
#include "pool/undo_journal.hpp"

namespace mpaio::detail {

class PoolWatcher;
class ProcFdSegment;
struct LocalPoolsFork;

class PoolCore {
 public:
  PoolCore(SharedMemory control, bool owner);
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  ~PoolCore();

  PoolBlock allocate(std::size_t nbytes);
  PoolBlock attach(const PoolArrayRef& ref);
  void release(std::uint32_t record) noexcept;
  PoolTransfer send(std::uint32_t record, const PoolArrayRef& ref, pid_t receiver);
  PoolBlock adopt(const PoolTransfer& transfer);
  void drop(const PoolTransfer& transfer);
  std::size_t reclaim_dead();
  /// Releases everything held by, or in flight to, the process in `slot` and frees the slot, if the slot
  /// still names that process (pid and start time); returns how many references. For dead processes only.
  std::size_t reclaim_slot(std::uint32_t slot, std::int32_t pid, std::uint64_t start_time);
  std::size_t release_orphaned_transfers();
  /// Releases the transfers that `sender`, a process known to be gone, sent to the pool's owner or to this
  /// process and that were never adopted: for when the messages carrying them cannot be read. Returns how
  /// many.
  std::size_t release_transfers_from(pid_t sender);
  /// Drops a transfer that will never be adopted (a result rejected while decoding); no error if it is
  /// already gone.
  void discard(const PoolTransfer& transfer) noexcept;
  /// A copy of the process table, read under the lock.
  struct Slots {
    std::array<pool::ProcessSlot, pool::kMaxProcesses> slots;
    std::uint32_t owner;
  };
  Slots process_slots();
  /// Owner: starts the background watcher (PoolWatcher), if the kernel has pidfds; returns whether it runs.
  bool start_watcher();
  [[nodiscard]] bool watching() const noexcept;
  /// Owner: adds the first data segment (of segment_size bytes).
  void add_first_segment() { (void)grow(0); }
  void check_invariants();
  PoolStats stats();

  [[nodiscard]] std::uint64_t id() const noexcept { return h_->pool_id; }
  [[nodiscard]] const std::string& name() const noexcept { return control_.name(); }
  [[nodiscard]] pid_t owner_pid() const noexcept { return h_->processes[h_->owner_slot].pid; }
  [[nodiscard]] const std::string& segment_name(std::uint32_t segment);

  SharedMemoryPool* object = nullptr;  ///< the SharedMemoryPool that owns this core (for find())

 private:
  friend struct LocalPoolsFork;
  class Locked;
  template <class T>
  void set(T& field, T value) noexcept {
    journal_.set(field, value);
  }
  /// Rolls back the transaction of a locker that died (the lock said EOWNERDEAD) and counts it.
  void recover() noexcept;

  /// This process's slot, or kNone when it has none here: not registered yet, or this object came through
  /// fork() from the process that registered it.
  [[nodiscard]] std::uint32_t own_slot() const noexcept;

  void ensure_slot() {
    if (epoch_.load(std::memory_order_acquire) != pool_fork_epoch.load(std::memory_order_relaxed)) register_self();
  }
  /// Owner: maps and adopts the segments other processes added since the last look (a hint read unlocked;
  /// adopt_segments() reads the count again under the lock).
  void adopt_new_segments() {
    if (owner_ && __atomic_load_n(&h_->segment_count, __ATOMIC_RELAXED) != known_segments_.load(std::memory_order_relaxed)) {
      adopt_segments();
    }
  }
  void register_self();
  void take_slot(std::uint32_t slot, pid_t pid, std::uint64_t start_time);  // under the lock
  std::uint32_t slot_of(pid_t pid);
  std::byte* base_of(std::uint32_t segment) {
    std::byte* base = bases_[segment].load(std::memory_order_acquire);
    return base != nullptr ? base : map_segment(segment);
  }
  pool::SegmentRecord segment_record(std::uint32_t segment);  // under the lock
  /// Maps data segment `segment` here (by name, or through the holder's /proc/<pid>/fd).
  std::byte* map_segment(std::uint32_t segment);
  /// Adds a data segment of segment_size bytes, or larger if that is needed to serve a request of `size`;
  /// false when all max_segments are in use (the caller decides whether that is an error).
  bool grow(std::uint64_t size);
  void adopt_segments();
  void flush_quick();
  [[nodiscard]] std::uint64_t free_bytes() const noexcept {  // also read unlocked, for error messages
    return __atomic_load_n(&h_->bytes_total, __ATOMIC_RELAXED) - __atomic_load_n(&h_->bytes_in_use, __ATOMIC_RELAXED);
  }

  // Under the lock.
  /// A used block of `size` bytes from the allocator, counted in use; kNone when none is free.
  std::uint32_t take_block(std::uint64_t size);
  /// Gives block `b`, whose last reference went, back to the allocator.
  void free_block(std::uint32_t b);
  std::uint32_t new_record(std::uint32_t block, std::uint32_t state, std::uint32_t holder);
  void release_record(std::uint32_t r);
  void check_record(std::uint32_t r, std::uint32_t state, const PoolTransfer* transfer, const char* what);
  /// Releases everything `slot` holds or has in flight to it, orphans the transfers it sent, frees the
  /// slot; `dead` counts the references as reclaimed. Returns how many references were released.
  std::size_t vacate_slot(std::uint32_t slot, bool dead);
  /// Throws InvalidArgument naming the field when `ref`'s ndim, shape or offset is malformed, it names
  /// another segment than its block's, or its elements reach past its block (which must be live).
  void check_extent(const PoolArrayRef& ref, const char* what);
  /// Maps the segment of `out`, a reference just taken for this process; if that fails, releases the
  /// reference (a segment this process cannot map must not leave a block held with no handle) and rethrows.
  void map_or_release(PoolBlock& out);
  PoolBlock block_of(std::uint32_t r);

  SharedMemory control_;
  pool::ControlHeader* h_;
  pool::BlockDesc* blocks_;
  pool::RefRecord* records_;
  UndoJournal journal_;  // over the whole control segment
  TlsfAllocator allocator_;
  // This process's registration, written by register_self() before it publishes epoch_ (release); a thread
  // reads them after ensure_slot() has seen the current epoch (acquire).
  bool owner_ = false;
  std::uint32_t slot_ = pool::kNone;
  std::atomic<std::uint64_t> epoch_{0};
  // Both mutexes are held by the fork handlers while fork() runs (local_pools.hpp), so that a child never
  // inherits one locked by another thread. Order: register_mutex_, then local_mutex_, held briefly.
  std::mutex register_mutex_;  // one thread registers a forked child; the others wait and see its epoch
  std::atomic<std::uint32_t> known_segments_{0};  // owner: segments adopted so far
  std::array<std::atomic<std::byte*>, pool::kMaxSegments> bases_{};
  std::mutex local_mutex_;  // guards the three below; held for a few memory operations, no other lock under it
  std::array<std::string, pool::kMaxSegments> names_;
  std::vector<std::unique_ptr<SharedMemory>> created_;
  std::vector<std::unique_ptr<ProcFdSegment>> opened_;
  std::unique_ptr<PoolWatcher> watcher_;  // owner only; stopped first in the destructor
};

}  // namespace mpaio::detail
