#pragma once
/// @file pool_error.hpp
/// The errors a SharedMemoryPool reports.

#include <cstdint>

#include "mpaio/error.hpp"

namespace mpaio {

/// A pool reference or transfer token no longer names a live array: the block was freed (its generation
/// moved on), the token was already adopted or dropped, or it belongs to another pool. Never reads the
/// memory of another array instead.
class StalePoolReference : public Error {
 public:
  using Error::Error;
};

/// The pool cannot satisfy a request: every segment it may add is in use, or its block or reference
/// tables are full. Names the bytes requested and the bytes free.
class PoolExhausted : public Error {
 public:
  PoolExhausted(const std::string& what, std::uint64_t requested, std::uint64_t free_bytes)
      : Error(what), requested_(requested), free_bytes_(free_bytes) {}
  [[nodiscard]] std::uint64_t requested() const noexcept { return requested_; }
  [[nodiscard]] std::uint64_t free_bytes() const noexcept { return free_bytes_; }

 private:
  std::uint64_t requested_;
  std::uint64_t free_bytes_;
};

/// The pool's shared bookkeeping breaks one of its invariants (found by check_invariants), or its lock
/// cannot be recovered.
class PoolCorrupted : public Error {
 public:
  using Error::Error;
};

}  // namespace mpaio
