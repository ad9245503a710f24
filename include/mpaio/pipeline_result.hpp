#pragma once
/// @file pipeline_result.hpp
/// What a pipeline hands back per item (a value or an ItemFailure), its errors, and its per-stage counters.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "mpaio/error.hpp"

namespace mpaio {

/// Why an item failed.
enum class ItemFailureKind {
  exception,  ///< the stage's process threw (or its result could not be decoded)
  crash,      ///< the replica died while handling it
  timeout,    ///< it ran past StageOptions::timeout and its replica was stopped
  stage_init, ///< no replica of the stage could be constructed
  too_large,  ///< its inputs or its result exceed PipelineOptions::max_item_bytes
};

/// One failed item: where and why.
struct ItemFailure {
  std::uint64_t item = 0;
  ItemFailureKind kind = ItemFailureKind::exception;
  std::string stage{};     ///< the stage's name
  unsigned replica = 0;    ///< which of its processes
  pid_t pid = 0;           ///< that process (0 when none ran it)
  unsigned attempt = 0;    ///< the last attempt (0 = the first)
  std::string error_type{};  ///< the exception's type, when it threw
  std::string message{};     ///< the cause: what() of the exception, the signal and backtrace of a crash...

  /// "item 17 failed in stage 'classifier' (replica 1, pid 4242, attempt 3): std::runtime_error: bad frame".
  [[nodiscard]] std::string describe() const;
};

/// The result of one item: its value, or why it failed.
template <class T>
struct PipelineResult {
  std::uint64_t item = 0;               ///< the id push() returned for it
  std::optional<T> value;               ///< set when it went through every stage
  std::optional<ItemFailure> failure;   ///< set when it failed

  [[nodiscard]] bool ok() const noexcept { return value.has_value(); }
  /// The value; throws ItemError when the item failed.
  T& operator*();
  const T& operator*() const { return const_cast<PipelineResult*>(this)->operator*(); }
  T* operator->() { return &**this; }
  const T* operator->() const { return &**this; }
};

/// An item failed (ErrorPolicy::fail_fast ends the pipeline with it; PipelineResult::operator* throws it).
class ItemError : public Error {
 public:
  explicit ItemError(ItemFailure failure) : Error(failure.describe()), failure_(std::move(failure)) {}
  [[nodiscard]] const ItemFailure& failure() const noexcept { return failure_; }

 private:
  ItemFailure failure_;
};

/// A stage could not be constructed in any of its processes (each tried StageOptions::max_init_failures
/// times, with a growing pause in between): the pipeline cannot go on.
class StageInitError : public Error {
 public:
  StageInitError(std::string stage, std::string what) : Error(std::move(what)), stage_(std::move(stage)) {}
  [[nodiscard]] const std::string& stage() const noexcept { return stage_; }

 private:
  std::string stage_;
};

template <class T>
T& PipelineResult<T>::operator*() {
  if (!value) throw ItemError(failure.value_or(ItemFailure{.item = item}));
  return *value;
}

/// Counters of one stage, over the pipeline's life.
struct StageStats {
  std::string name;
  unsigned replicas = 0;
  std::uint64_t items = 0;         ///< items it finished
  std::uint64_t failures = 0;      ///< attempts that failed (exceptions, crashes, timeouts)
  std::uint64_t constructed = 0;   ///< times its object was constructed (once per process it started)
  std::uint64_t restarts = 0;      ///< replicas replaced after a crash, a timeout or a failed construction
  std::int64_t busy_ns = 0;        ///< time spent in `process`, all replicas together
  std::int64_t queue_wait_ns = 0;  ///< time items waited, inputs complete, for a free replica
  std::uint64_t queued = 0;        ///< items waiting for it now
};

}  // namespace mpaio
