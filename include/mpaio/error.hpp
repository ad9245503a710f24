#pragma once
/// @file error.hpp
/// The exception hierarchy: every error mpaio reports derives from mpaio::Error.

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <sys/types.h>

#include "mpaio/range.hpp"

namespace mpaio {

/// Base of every exception mpaio throws; what() names what was wrong and where.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A caller passed a value mpaio cannot use (a size of 0, a bad shape, an unknown dtype...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// A system call failed; carries the call's name, the arguments that matter and errno.
class SystemError : public Error {
 public:
  /// @param call   the failed call with its arguments, e.g. "shm_open(name=/mpaio-1, O_RDWR)"
  /// @param errnum errno as the call left it
  SystemError(std::string call, int errnum, const std::string& detail = {});
  /// errno of the failed call.
  [[nodiscard]] std::error_code code() const noexcept { return code_; }
  /// The call and its arguments.
  [[nodiscard]] const std::string& call() const noexcept { return call_; }

 private:
  std::string call_;
  std::error_code code_;
};

/// Shared memory is too small for a request: names the bytes requested and available.
class OutOfSharedMemory : public SystemError {
 public:
  OutOfSharedMemory(std::string call, int errnum, std::uint64_t requested, std::uint64_t available);
  [[nodiscard]] std::uint64_t requested() const noexcept { return requested_; }
  [[nodiscard]] std::uint64_t available() const noexcept { return available_; }

 private:
  std::uint64_t requested_;
  std::uint64_t available_;
};

/// A byte record (a chunk result, a JSON document) is malformed; decoding stopped before reading past it.
class DecodeError : public Error {
 public:
  using Error::Error;
};

/// A chunk failed: names the worker type, the chunk, the worker slot and process, and the cause.
///
/// When `process` threw an exception of a registered type (register_exception in exception_registry.hpp),
/// original() holds that exception as itself, and the ChunkError that run() throws also derives from
/// std::nested_exception, so `std::rethrow_if_nested(e)` rethrows it too.
class ChunkError : public Error {
 public:
  /// @param cause_type the exception type thrown by `process`, or the kind of failure
  /// @param cause      the exception's message, or how the worker died
  /// @param original   the exception `process` threw, rebuilt in this process; null when there is none
  ChunkError(std::string worker_type, Range range, std::uint32_t slot, pid_t pid, std::string cause_type,
             std::string cause, std::exception_ptr original = nullptr);
  [[nodiscard]] const std::string& worker_type() const noexcept { return worker_type_; }
  [[nodiscard]] Range range() const noexcept { return range_; }
  [[nodiscard]] std::uint32_t slot() const noexcept { return slot_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] const std::string& cause_type() const noexcept { return cause_type_; }
  [[nodiscard]] const std::string& cause() const noexcept { return cause_; }
  /// The exception `process` threw, as its own type: set when that type is registered where the chunk ran
  /// and here; null otherwise (an unregistered type, a crash, a timeout).
  [[nodiscard]] const std::exception_ptr& original() const noexcept { return original_; }
  /// Throws original() when there is one; returns otherwise (as std::rethrow_if_nested does).
  void rethrow_original() const {
    if (original_) std::rethrow_exception(original_);
  }

 private:
  std::string worker_type_;
  Range range_;
  std::uint32_t slot_;
  pid_t pid_;
  std::string cause_type_;
  std::string cause_;
  std::exception_ptr original_;
};

/// A worker process died (signal, exit) while it ran a chunk; the pool has replaced it.
class WorkerCrashed : public ChunkError {
 public:
  using ChunkError::ChunkError;
};

/// A chunk ran past the run's chunk timeout; its worker was stopped (SIGTERM, then SIGKILL) and replaced.
class ChunkTimeout : public ChunkError {
 public:
  using ChunkError::ChunkError;
};

/// The run was cancelled (Asio cancellation of run(), e.g. on SIGINT); chunks in flight were stopped.
class RunCancelled : public Error {
 public:
  using Error::Error;
};

}  // namespace mpaio
