#pragma once
// PoolCore: the process-local side of a SharedMemoryPool (mappings, this process's slot) over the shared
// control segment (pool_layout.hpp). Every change to shared state is journaled, so that a process killed
// inside the locked section is rolled back by the next locker.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mpaio/detail/mapping.hpp"
#include "mpaio/detail/pool_core.hpp"
#include "mpaio/detail/unique_fd.hpp"
#include "mpaio/shared_memory.hpp"
#include "mpaio/shared_memory_pool.hpp"
#include "pool/pool_layout.hpp"

namespace mpaio::detail {

class PoolWatcher;

/// Start time of process `pid` (clock ticks since boot, /proc/<pid>/stat field 22); 0 when it does not exist
/// or is a zombie. Only system calls (no stdio, no locale): safe in the watcher thread and around fork().
std::uint64_t process_start_time(pid_t pid) noexcept;

/// An anonymous data segment opened through /proc/<pid>/fd/<fd> of the process that holds it, listed in
/// the process-wide segment registry under its memfd name like any SharedMemory.
class ProcFdSegment {
 public:
  ProcFdSegment(const std::string& name, pid_t pid, int fd, std::size_t size);
  ProcFdSegment(const ProcFdSegment&) = delete;
  ProcFdSegment& operator=(const ProcFdSegment&) = delete;
  ~ProcFdSegment();
  [[nodiscard]] std::byte* data() const noexcept { return mapping_.data(); }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

 private:
  UniqueFd fd_;
  Mapping mapping_;
  std::uint64_t key_ = 0;
};

class PoolCore {
 public:
  PoolCore(SharedMemory control, bool owner);
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  ~PoolCore();

  /// Formats a fresh control segment.
  static void format(pool::Header& h, const PoolOptions& options, std::size_t control_size);
  static std::size_t control_size_for(const PoolOptions& options);

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
  /// A copy of the process table, read under the lock.
  struct Slots {
    std::array<pool::ProcessSlot, pool::kMaxProcesses> slots;
    std::uint32_t owner;
  };
  Slots process_slots();
  /// Owner: starts the background watcher (PoolWatcher), if the kernel has pidfds; returns whether it runs.
  bool start_watcher();
  [[nodiscard]] bool watching() const noexcept;
  /// Owner: adds the first data segment.
  void add_first_segment() { grow(h_->segment_size); }
  void check_invariants();
  PoolStats stats();

  [[nodiscard]] std::uint64_t id() const noexcept { return h_->pool_id; }
  [[nodiscard]] const std::string& name() const noexcept { return control_.name(); }
  [[nodiscard]] pid_t owner_pid() const noexcept { return h_->processes[h_->owner_slot].pid; }
  [[nodiscard]] const std::string& segment_name(std::uint32_t segment);

  SharedMemoryPool* object = nullptr;  ///< the SharedMemoryPool that owns this core (for find())

 private:
  class Locked;
  template <class T>
  void set(T& field, T value) noexcept;
  void commit() noexcept;
  void undo() noexcept;
  void recover() noexcept;

  void ensure_slot() {
    if (epoch_ != pool_fork_epoch.load(std::memory_order_relaxed)) register_self();
  }
  void register_self();
  void take_slot(std::uint32_t slot, pid_t pid, std::uint64_t start_time);  // under the lock
  std::uint32_t slot_of(pid_t pid);
  std::byte* base_of(std::uint32_t segment) {
    std::byte* base = bases_[segment].load(std::memory_order_acquire);
    return base != nullptr ? base : map_segment(segment);
  }
  std::byte* map_segment(std::uint32_t segment);
  void grow(std::uint64_t size);
  void adopt_segments();
  void flush_quick();
  [[nodiscard]] std::uint64_t free_bytes() const noexcept { return h_->bytes_total - h_->bytes_in_use; }

  // Under the lock.
  std::uint32_t take_block(std::uint64_t size);
  void give_back(std::uint32_t b);
  void tlsf_free(std::uint32_t b);
  void insert_free(std::uint32_t b);
  void remove_free(std::uint32_t b);
  std::uint32_t new_desc();
  void retire_desc(std::uint32_t d);
  std::uint32_t new_record(std::uint32_t block, std::uint32_t state, std::uint32_t holder);
  void release_record(std::uint32_t r);
  void check_record(std::uint32_t r, std::uint32_t state, const PoolTransfer* transfer, const char* what);
  PoolBlock block_of(std::uint32_t r);

  SharedMemory control_;
  pool::Header* h_ = nullptr;
  pool::BlockDesc* blocks_ = nullptr;
  pool::RefRecord* records_ = nullptr;
  bool owner_ = false;
  std::uint32_t slot_ = pool::kNone;
  std::uint64_t epoch_ = 0;
  std::uint32_t known_segments_ = 0;  // owner: segments adopted so far
  std::array<std::atomic<std::byte*>, pool::kMaxSegments> bases_{};
  std::mutex local_mutex_;  // guards the three below
  std::array<std::string, pool::kMaxSegments> names_;
  std::vector<std::unique_ptr<SharedMemory>> created_;
  std::vector<std::unique_ptr<ProcFdSegment>> opened_;
  std::unique_ptr<PoolWatcher> watcher_;  // owner only; stopped first in the destructor
};

}  // namespace mpaio::detail
