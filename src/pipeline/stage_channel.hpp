#pragma once
// The shared memory of one stage replica and the records that cross it: the ring of items the caller
// sends (and the stop order), the ring of what the replica sends back (ready, done, failed, init failed),
// the wake-up words of both sides, and the item it handles now (for timeouts and blame). Positions are
// offsets, never pointers: each process maps the channels at its own address.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "process/channel.hpp"
#include "process/record_ring.hpp"
#include "process/wakeup.hpp"

namespace mpaio::detail {

/// Records of the task ring (caller -> replica).
enum class StageTaskKind : std::uint32_t {
  item = 1,  ///< StageItem, then `inputs` uint32 sizes, then the inputs' bytes one after the other
  stop = 2,  ///< destroy the stage object and exit
};

/// Records of the result ring (replica -> caller).
enum class StageResultKind : std::uint32_t {
  ready = 1,        ///< the stage object is constructed (no body)
  done = 2,         ///< StageDone, then the result's bytes
  failed = 3,       ///< StageFailed, then the error type's and the message's characters
  init_failed = 4,  ///< StageFailed (item and attempt 0), then type and message: the constructor threw
};

/// The error type of a `failed` record whose result exceeded max_item_bytes (ItemFailureKind::too_large).
inline constexpr std::string_view kResultTooLarge = "mpaio::ResultTooLarge";

struct StageItem {
  std::uint64_t item;
  std::uint32_t attempt;
  std::uint32_t inputs;
};

struct StageDone {
  std::uint64_t item;
  std::uint32_t attempt;
  std::uint32_t reserved;
  std::int64_t start_ns;
  std::int64_t end_ns;
};

struct StageFailed {
  std::uint64_t item;
  std::uint32_t attempt;
  std::uint32_t type_bytes;
  std::int64_t start_ns;
  std::int64_t end_ns;
  std::uint32_t message_bytes;
  std::uint32_t reserved;
};

struct StageChannelHeader {
  RecordRingState tasks;                                  // caller -> replica; bytes after the header
  RecordRingState results;                                // replica -> caller; bytes after the task ring
  alignas(64) EventCountState replica_wake;               // the replica sleeps here (for tasks, for room)
  alignas(64) DoorbellState caller_wake;                  // the caller sleeps on the pipeline's eventfd
  alignas(64) std::atomic<std::uint64_t> running{0};      // replica: item + 1 of the item it handles, 0: none
  std::atomic<std::int64_t> running_since_ns{0};          // replica: since when
  alignas(64) std::atomic<std::uint32_t> stop_requested{0};  // caller: the pipeline is cancelled (StopToken)
};

/// A view of one replica's channel.
class StageChannel {
 public:
  StageChannel() = default;
  StageChannel(std::byte* base, std::size_t ring_bytes) noexcept
      : header_(reinterpret_cast<StageChannelHeader*>(base)),
        tasks_(base + sizeof(StageChannelHeader), ring_bytes),
        results_(base + sizeof(StageChannelHeader) + ring_bytes, ring_bytes) {}

  /// Bytes one replica takes for rings of `ring_bytes` bytes each.
  static constexpr std::size_t footprint(std::size_t ring_bytes) {
    return align_up(sizeof(StageChannelHeader) + 2 * ring_bytes, 4096);
  }

  [[nodiscard]] StageChannelHeader& header() const noexcept { return *header_; }
  [[nodiscard]] std::span<std::byte> task_ring() const noexcept { return tasks_; }
  [[nodiscard]] std::span<std::byte> result_ring() const noexcept { return results_; }

  /// Makes the channel new for the replica's next process; keeps a cancellation's stop request.
  void reset(bool stop_requested) noexcept { renew_header(header_, stop_requested); }

 private:
  StageChannelHeader* header_ = nullptr;
  std::span<std::byte> tasks_;
  std::span<std::byte> results_;
};

/// Where the replicas' channels are and how replicas behave; the same in the caller and, inherited through
/// the fork server, in every replica.
struct StageProcessSettings {
  std::byte* channels = nullptr;  ///< replica slot i's channel is at channels + i * slot_bytes
  std::size_t slot_bytes = 0;
  std::size_t ring_bytes = 0;
  std::size_t max_item_bytes = 0;
  int eventfd = -1;               ///< the caller's doorbell
  std::chrono::nanoseconds spin{};
  std::chrono::nanoseconds max_result_delay{};  ///< how long a result of a short item may be held

  [[nodiscard]] StageChannel channel(std::size_t slot) const { return {channels + slot * slot_bytes, ring_bytes}; }
};

}  // namespace mpaio::detail
