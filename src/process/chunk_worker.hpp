#pragma once
// A chunk worker process: takes chunk orders from its task ring, runs them through the registered worker
// type they name, and publishes each result (or failure, or a line it logged) on its result ring.

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "process/channel.hpp"
#include "process/fork_server.hpp"

namespace mpaio::detail {

/// Where the channels of a pool's workers are and how the workers behave; the same in the caller and,
/// inherited through the fork server, in every worker.
struct ChunkWorkerSettings {
  std::byte* channels = nullptr;  ///< slot i's channel is at channels + i * slot_bytes
  std::size_t slot_bytes = 0;
  std::size_t ring_bytes = 0;     ///< of each result ring
  std::size_t max_result_bytes = 0;
  int eventfd = -1;               ///< the caller's doorbell
  std::chrono::nanoseconds worker_spin{};
  std::chrono::nanoseconds max_result_delay{};  ///< how long a worker may hold results of short chunks
  std::uint64_t refill_below = 0;  ///< a worker with this many chunks queued or fewer wakes the caller at once

  [[nodiscard]] Channel channel(std::size_t slot) const { return {channels + slot * slot_bytes, ring_bytes}; }
};

/// The main of a chunk worker process in slot `context.slot`; returns its exit status (it normally leaves
/// from inside, with ChildExit::ok, when told to stop).
int chunk_worker_main(const ChunkWorkerSettings& settings, const ChildContext& context);

}  // namespace mpaio::detail
