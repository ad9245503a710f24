#pragma once
// The wake-up protocol of the rings, for both kinds of consumer:
//
// - EventCount: a process (a worker, a stage) that waits for a condition on shared memory sleeps on a futex.
//   Any number of its threads may wait at once, each for its own condition (the main thread for a task, a
//   logging thread for ring space), so a notification wakes them all.
// - Doorbell: a caller that waits in an Asio loop sleeps on an eventfd. It arms the doorbell before it
//   sleeps; a producer that publishes while it is armed disarms it and writes the eventfd, once.
//
// Both are the store-buffering pattern: the waiter announces itself then reads the condition; the producer
// writes the condition then reads the announcement. Each side puts a sequentially consistent fence between
// its write and its read, so that at least one of them sees the other's write (an acquire load alone may be
// ordered before the preceding store on weakly ordered machines, and then both miss each other).

#include <sys/eventfd.h>

#include <atomic>
#include <cstdint>

#include "process/futex.hpp"

namespace mpaio::detail {

/// The shared part of an EventCount (in shared memory; zero is the initial state).
struct EventCountState {
  std::atomic<std::uint32_t> sequence{0};  // bumped by every notification that finds a waiter
  std::atomic<std::uint32_t> waiters{0};   // threads between announcing themselves and waking
};

/// Sleeps until `ready()` holds: spins for up to `spin_ns`, then waits on the futex. `ready()` must read
/// the shared state the notifier writes before it calls notify().
template <class Ready>
void wait_until(EventCountState& ec, Ready ready, std::int64_t spin_ns) {
  if (spin_until(ready, spin_ns)) return;
  for (;;) {
    const std::uint32_t seen = ec.sequence.load(std::memory_order_acquire);
    ec.waiters.fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // announce, then read the condition
    if (ready()) {
      ec.waiters.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    futex_wait(&ec.sequence, seen);
    ec.waiters.fetch_sub(1, std::memory_order_relaxed);
    if (ready()) return;
  }
}

/// Wakes every thread waiting on `ec`; call it after writing what they wait for.
inline void notify(EventCountState& ec) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // write the condition, then read the announcement
  if (ec.waiters.load(std::memory_order_relaxed) == 0) return;  // the common case: nobody sleeps
  ec.sequence.fetch_add(1, std::memory_order_release);
  futex_wake_all(&ec.sequence);
}

/// The shared part of a Doorbell: whether the consumer sleeps on its eventfd.
struct DoorbellState {
  std::atomic<std::uint32_t> armed{0};
};

/// Consumer side, before it sleeps: arms the doorbell. The consumer must look for records once more
/// afterwards (one published before the arming rang nothing).
inline void arm(DoorbellState& bell) noexcept {
  bell.armed.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // arm, then look for records
}

/// Producer side, after publishing: rings the consumer's eventfd if it is armed (once per arming).
/// Returns whether it rang.
inline bool ring(DoorbellState& bell, int eventfd) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // publish, then read the arming
  if (bell.armed.load(std::memory_order_relaxed) == 0) return false;
  if (bell.armed.exchange(0, std::memory_order_acq_rel) == 0) return false;
  ::eventfd_write(eventfd, 1);
  return true;
}

}  // namespace mpaio::detail
