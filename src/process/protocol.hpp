#pragma once
// Messages between the caller, the fork server and the workers (besides the shared-memory channel).

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "process/channel.hpp"

namespace mpaio::detail {

/// Caller -> fork server.
struct ForkRequest {
  enum class Op : std::uint32_t { spawn = 1, shutdown = 2 } op;
  std::uint32_t slot;
};

/// Fork server -> caller, with the worker's pidfd and the caller's end of its socket on success.
struct ForkReply {
  std::int32_t pid;
  std::int32_t error;  // errno of a failed fork, or 0
};

inline constexpr std::size_t kMaxDims = 32;

/// Caller -> worker over its socket, announced by a TaskKind::bind record; carries the segment's
/// descriptor the first time the worker sees that segment.
struct BindMessage {
  std::uint32_t array;
  std::uint32_t ndim;
  std::uint64_t key;           // the segment, as the caller's registry names it
  std::uint64_t offset;        // of element 0 in the segment
  std::uint64_t segment_size;
  std::uint64_t nbytes;        // of the array
  std::uint64_t shape[kMaxDims];
};

/// Everything the fork server and the workers it forks need to know.
struct PoolLayout {
  std::byte* channels = nullptr;  // slot i's channel is at channels + i * slot_bytes
  std::size_t slot_bytes = 0;
  std::size_t ring_capacity = 0;
  std::size_t slots = 0;
  std::size_t max_result_bytes = 0;
  int eventfd = -1;
  std::chrono::nanoseconds worker_spin{};
  std::chrono::nanoseconds max_result_delay{};  // how long a worker may hold results of short chunks
  std::uint64_t refill_below = 0;  // a worker with this many chunks queued or fewer wakes the caller at once
  std::chrono::milliseconds shutdown_grace{};
  std::vector<int> pinned_cpus;  // per slot (slot % size), empty: not pinned

  [[nodiscard]] Channel channel(std::size_t slot) const { return {channels + slot * slot_bytes, ring_capacity}; }
};

/// Runs a worker process's loop in slot `slot`, reading binds from `socket`. Never returns.
[[noreturn]] void worker_main(const PoolLayout& layout, std::size_t slot, int socket, pid_t fork_server);

/// Runs the fork server's loop on `socket` (its end of the caller's socket). Never returns.
[[noreturn]] void fork_server_main(const PoolLayout& layout, int socket);

/// Closes every descriptor of this process except those in `keep`.
void close_fds_except(std::initializer_list<int> keep) noexcept;

/// Puts every signal back to its default action, ignores SIGINT and unblocks all signals.
void reset_signals_for_child() noexcept;

}  // namespace mpaio::detail
