#pragma once
// The worker types this program knows, by a stable id: what a task names when it crosses to another
// process. A function address would only be right in a process forked from the same image (a separately
// launched process of the same program, as an MPI rank is, has other addresses); the id of a type is the
// same in every execution of one build of the program.

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "mpaio/detail/chunk_call.hpp"

namespace mpaio::detail {

/// A worker type's id: a hash of its mangled name (and, for two types of one name, of their order).
using WorkerTypeId = std::uint64_t;

/// Drops an encoded result without delivering it, releasing what it holds (pool references in flight).
using DiscardFn = void (*)(std::span<const std::byte> encoded) noexcept;

/// What the registry knows of one worker type.
struct WorkerType {
  WorkerTypeId id = 0;
  std::string name;  ///< demangled, for messages
  ChunkFn run = nullptr;
  DiscardFn discard = nullptr;
};

/// Registers a worker type (idempotent for the same `run`); called during static initialisation by every
/// Worker<Derived, ...> the program uses. Returns its id.
WorkerTypeId register_worker_type(const char* mangled_name, ChunkFn run, DiscardFn discard);

/// The worker type registered under `id` in this process, or nullptr.
const WorkerType* find_worker_type(WorkerTypeId id) noexcept;

/// Holds the registry's lock, so that a fork() made meanwhile cannot copy it locked by another thread.
std::unique_lock<std::mutex> lock_worker_registry();

}  // namespace mpaio::detail
