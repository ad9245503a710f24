#pragma once
// Process-wide list of the shared-memory segments this process holds, so that an ArrayMeta (which
// carries only a name) can be turned back into a mapping and a descriptor to pass to a worker.

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "mpaio/detail/unique_fd.hpp"

namespace mpaio::detail {

/// What the registry knows of one live segment.
struct SegmentInfo {
  std::uint64_t key = 0;
  std::byte* base = nullptr;
  std::size_t size = 0;
  bool writable = false;
};

/// Adds a live segment; returns its new process-unique key.
std::uint64_t register_segment(std::string_view name, int fd, std::byte* base, std::size_t size,
                               bool writable);
/// Removes the segment registered under `key`.
void unregister_segment(std::uint64_t key) noexcept;
/// Finds a live segment by name (leading slashes ignored); prefers a writable one.
std::optional<SegmentInfo> find_segment(std::string_view name);
/// A duplicate of the descriptor of the live segment `key`, or an empty UniqueFd if it is gone.
UniqueFd dup_segment_fd(std::uint64_t key);
/// Whether the segment `key` is still held by this process.
bool segment_alive(std::uint64_t key);

/// Holds the registry's lock, so that a fork() made meanwhile cannot copy it locked by another thread.
std::unique_lock<std::mutex> lock_segment_registry();

/// Strips the leading slashes of a POSIX shared-memory name, as glibc's shm_open does.
std::string_view bare_segment_name(std::string_view name) noexcept;

}  // namespace mpaio::detail
