#pragma once
// RunGate: runs on one executor take turns. An executor serves one run at a time (executor.hpp); a run
// started while another holds the executor waits, without blocking its loop, and is resumed on its own loop
// when its turn comes, whichever thread ends the run before it. Every executor gets this from the
// orchestrator, keyed on the executor's address, so that an executor needs nothing to take part.

#include <thread>

#include <asio/awaitable.hpp>

#include "mpaio/executor.hpp"

namespace mpaio::detail {

/// The turns of the runs on each executor.
class RunGate {
 public:
  /// A run's turn on an executor: while it lives, other runs on the executor wait. Move-only.
  class Turn {
   public:
    Turn() = default;
    explicit Turn(const Executor* executor) noexcept : executor_(executor) {}
    Turn(Turn&& other) noexcept : executor_(other.executor_) { other.executor_ = nullptr; }
    Turn& operator=(Turn&& other) noexcept;
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    /// Ends the turn: the next waiting run, if any, is resumed on its loop.
    ~Turn();

   private:
    const Executor* executor_ = nullptr;
  };

  /// Waits until no other run holds `executor`, in the order the runs asked, and takes it. Must be
  /// co_awaited on the run's loop. Throws RunCancelled when the run is cancelled while it waits (or as its
  /// turn comes); a run whose coroutine is destroyed while waiting leaves the queue.
  static asio::awaitable<Turn> take(const Executor& executor);

  /// Whether a run that took `executor` on this thread holds it: a blocking run started here now would
  /// wait for a run that this thread has to drive.
  [[nodiscard]] static bool held_from_this_thread(const Executor& executor);
};

}  // namespace mpaio::detail
