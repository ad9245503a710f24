#pragma once
// The per-worker channel in shared memory: a ring of fixed-size task records (caller -> worker), a
// ring of variable-size result records (worker -> caller), the wake-up words of both sides and the exit
// report the fork server writes when the worker dies. Positions are offsets, never pointers.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "process/futex.hpp"

namespace mpaio::detail {

enum class TaskKind : std::uint32_t { chunk = 1, bind = 2, forget = 3, stop = 4, log_level = 5 };

/// One record of the task ring (64 bytes).
struct TaskRecord {
  TaskKind kind;
  std::uint32_t array;      // chunk: the run's array index
  std::uint64_t chunk_id;   // chunk
  std::uint64_t fn;         // chunk: the ChunkFn, as an integer
  std::uint64_t start;      // chunk: range
  std::uint64_t end;
  std::uint64_t key;        // forget: the segment to unmap
  std::uint64_t reserved[2];
};
static_assert(sizeof(TaskRecord) == 64);

inline constexpr std::size_t kTaskSlots = 64;

enum class ResultKind : std::uint32_t { ok = 1, error = 2, pad = 3, log = 4 };  // log: chunk_id is the level

/// Header of one record of the result ring; the payload follows, the record is padded to 8 bytes.
struct ResultHeader {
  std::uint32_t size;       // whole record, header included
  ResultKind kind;
  std::uint64_t chunk_id;
  std::int64_t start_ns;
  std::int64_t end_ns;
  std::uint32_t payload;    // payload bytes
  std::uint32_t type_len;   // error: the exception type's bytes at the start of the payload
};
static_assert(sizeof(ResultHeader) == 40);

/// The shared part of one worker slot; the result ring's bytes follow it.
struct ChannelHeader {
  alignas(64) std::atomic<std::uint64_t> task_head;    // caller writes
  alignas(64) std::atomic<std::uint64_t> task_tail;    // worker writes
  alignas(64) std::atomic<std::uint32_t> worker_seq;   // worker eventcount: bumped to wake it
  std::atomic<std::uint32_t> worker_sleeping;
  alignas(64) std::atomic<std::uint64_t> result_head;  // worker writes
  alignas(64) std::atomic<std::uint64_t> result_tail;  // caller writes
  alignas(64) std::atomic<std::uint32_t> parent_armed; // caller sleeps on the eventfd: write it
  alignas(64) std::atomic<std::uint64_t> running;      // worker: id + 1 of the chunk it runs, 0 when none
  std::atomic<std::int64_t> running_since_ns;          // worker: when that chunk started
  std::atomic<std::uint32_t> stop_requested;           // caller: the run is being cancelled (StopToken)
  alignas(64) std::atomic<std::int32_t> exit_pid;      // fork server: pid that exited, with its status
  std::int32_t exit_code;                              // exit status, or -1 when killed
  std::int32_t exit_signal;                            // signal that killed it, or 0
  alignas(64) TaskRecord tasks[kTaskSlots];
};

inline constexpr std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

/// A view of one slot's channel: header plus result ring of `capacity` bytes.
class Channel {
 public:
  Channel() = default;
  Channel(std::byte* base, std::size_t capacity)
      : header_(reinterpret_cast<ChannelHeader*>(base)), ring_(base + sizeof(ChannelHeader)), capacity_(capacity) {}

  /// Bytes one slot needs for a result ring of `capacity` bytes.
  static std::size_t footprint(std::size_t capacity) { return align_up(sizeof(ChannelHeader) + capacity, 4096); }
  /// The largest record the ring takes (half of it, so a record always fits after a wrap).
  [[nodiscard]] std::size_t max_record() const noexcept { return capacity_ / 2; }

  [[nodiscard]] ChannelHeader& header() const noexcept { return *header_; }
  [[nodiscard]] std::byte* ring() const noexcept { return ring_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  /// Resets every field for a new worker process in this slot.
  void reset() noexcept {
    auto& h = *header_;
    h.task_head.store(0, std::memory_order_relaxed);
    h.task_tail.store(0, std::memory_order_relaxed);
    h.worker_seq.store(0, std::memory_order_relaxed);
    h.worker_sleeping.store(0, std::memory_order_relaxed);
    h.result_head.store(0, std::memory_order_relaxed);
    h.result_tail.store(0, std::memory_order_relaxed);
    h.parent_armed.store(0, std::memory_order_relaxed);
    h.running.store(0, std::memory_order_relaxed);
    h.running_since_ns.store(0, std::memory_order_relaxed);
    h.stop_requested.store(0, std::memory_order_relaxed);
    h.exit_pid.store(0, std::memory_order_relaxed);
    h.exit_code = 0;
    h.exit_signal = 0;
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }

  /// Wakes the worker if it sleeps (after new tasks, or after ring space was freed).
  void wake_worker() const noexcept {
    auto& h = *header_;
    // A plain load first: the common case (the worker is awake) then costs no locked instruction.
    if (h.worker_sleeping.load(std::memory_order_seq_cst) != 0 &&
        h.worker_sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
      h.worker_seq.fetch_add(1, std::memory_order_seq_cst);
      futex_wake(&h.worker_seq);
    }
  }

 private:
  ChannelHeader* header_ = nullptr;
  std::byte* ring_ = nullptr;
  std::size_t capacity_ = 0;
};

}  // namespace mpaio::detail
