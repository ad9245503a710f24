#pragma once
// The shared memory of one chunk-worker slot: its task ring, its result ring, the wake-up words of both
// sides and what the worker tells of the chunk it runs. The result ring's bytes follow the header. Positions
// are offsets, never pointers: every process maps the channels at its own address.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>

#include "process/chunk_protocol.hpp"
#include "process/record_ring.hpp"
#include "process/task_ring.hpp"
#include "process/wakeup.hpp"

namespace mpaio::detail {

using ChunkTaskRing = TaskRingState<TaskRecord, kTaskSlots>;

/// The layout of one slot's channel.
struct ChannelHeader {
  ChunkTaskRing tasks;                                  // caller -> worker
  RecordRingState results;                              // worker -> caller; bytes after the header
  alignas(64) EventCountState worker_wake;              // the worker's threads sleep here
  alignas(64) DoorbellState caller_wake;                // the caller sleeps on the pool's eventfd
  alignas(64) std::atomic<std::uint64_t> running{0};    // worker: chunk id + 1 of the chunk it runs, 0 when none
  std::atomic<std::int64_t> running_since_ns{0};        // worker: when that chunk started
  alignas(64) std::atomic<std::uint32_t> stop_requested{0};  // caller: the run is being cancelled (StopToken)
};

inline constexpr std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

/// Makes a channel header new, for a new process in its slot (a chunk worker's, a stage replica's); keeps
/// the stop request of a run or pipeline being cancelled.
template <class Header>
void renew_header(Header* header, bool stop_requested) noexcept {
  header->~Header();
  new (header) Header{};
  header->stop_requested.store(stop_requested ? 1 : 0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);  // the new process starts after a socket message
}

/// A view of one slot's channel.
class Channel {
 public:
  Channel() = default;
  Channel(std::byte* base, std::size_t ring_bytes) noexcept
      : header_(reinterpret_cast<ChannelHeader*>(base)), ring_(base + sizeof(ChannelHeader), ring_bytes) {}

  /// Bytes one slot takes for a result ring of `ring_bytes` bytes.
  static constexpr std::size_t footprint(std::size_t ring_bytes) {
    return align_up(sizeof(ChannelHeader) + ring_bytes, 4096);
  }

  [[nodiscard]] ChannelHeader& header() const noexcept { return *header_; }
  [[nodiscard]] std::span<std::byte> ring() const noexcept { return ring_; }

  /// Makes the channel new, for a new process in the slot; keeps the stop request of a run being cancelled.
  void reset(bool stop_requested) noexcept { renew_header(header_, stop_requested); }

 private:
  ChannelHeader* header_ = nullptr;
  std::span<std::byte> ring_;
};

}  // namespace mpaio::detail
