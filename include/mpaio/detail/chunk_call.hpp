#pragma once
// The type-erased entry point of a worker type: what a task record carries across processes.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mpaio/range.hpp"

namespace mpaio::detail {

/// A worker object's run parameters as a chunk sees them: the object itself in the process that made it, or
/// its encoded bytes in a worker process, decoded by the worker type on first use into `decoded` (kept for
/// the rest of the run).
struct ParamsRef {
  const void* object = nullptr;
  std::span<const std::byte> encoded;
  std::shared_ptr<void>* decoded = nullptr;
};

/// Everything one call of a worker's `process` needs, in the process that runs it.
struct ChunkCall {
  const std::byte* data = nullptr;       ///< element 0 of the array
  std::span<const std::size_t> shape;    ///< the array's shape
  Range range;                           ///< the chunk
  std::vector<std::byte>* out = nullptr; ///< the encoded result is appended here
  const std::atomic<std::uint32_t>* stop = nullptr;  ///< non-zero once the run is being cancelled
  const ParamsRef* params = nullptr;     ///< the worker's parameters, if its type has some
};

/// Runs one chunk: calls Derived::init() once per process, then Derived::process, and encodes the
/// result. Reached in another process through the worker type's registered id (worker_registry.hpp), never
/// through its address. Exceptions propagate to the executor.
using ChunkFn = void (*)(const ChunkCall&);

/// The outcome of running a chunk in this process.
struct ChunkExecution {
  std::int64_t start_ns = 0;  ///< steady clock (CLOCK_MONOTONIC), comparable across processes
  std::int64_t end_ns = 0;
  bool failed = false;
  std::string error_type;     ///< demangled exception type when failed
  std::string error_message;  ///< what() or a description when failed
  /// The exception itself, encoded with its registered name when its type is registered
  /// (register_exception); empty otherwise. decode_exception() rebuilds it in the caller.
  std::vector<std::byte> failure_payload;
};

/// Runs `fn` on `call`, timing it and turning any exception (std:: or not) into error fields, and a
/// registered one also into its failure_payload.
ChunkExecution execute_chunk(ChunkFn fn, const ChunkCall& call) noexcept;

/// The demangled type and the what() (or a description) of the exception being handled; call it in a
/// catch block.
void describe_current_exception(std::string& type, std::string& message);

/// CLOCK_MONOTONIC now, in nanoseconds.
std::int64_t monotonic_ns() noexcept;

/// The demangled name of a type_info.
std::string demangle(const char* mangled);

}  // namespace mpaio::detail
