#pragma once
// Futex wait/wake on a 32-bit word in shared memory (process-shared: no FUTEX_PRIVATE_FLAG), and the
// bounded spin that comes before sleeping.

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>

namespace mpaio::detail {

/// Sleeps while *word == expected, at most `timeout` (nullptr: no limit). Spurious returns are possible.
inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, const timespec* timeout = nullptr) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, timeout, nullptr, 0);
}

/// Wakes every sleeper on `word`: sleepers may wait for different conditions on one word, and a single
/// wake-up could go to one whose condition still does not hold.
inline void futex_wake_all(std::atomic<std::uint32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

/// A spin-wait hint for the CPU.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// CLOCK_MONOTONIC now, in nanoseconds (the clock of every timestamp mpaio records).
inline std::int64_t clock_ns() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec * 1'000'000'000LL + now.tv_nsec;
}

/// Waits up to `ns` nanoseconds for `ready()`, without sleeping: a short busy spin (a result is often
/// microseconds away), then sched_yield() between checks, so that on a busy machine the process we wait
/// for gets the CPU. Returns whether `ready()` became true.
template <class Ready>
bool spin_until(Ready ready, std::int64_t ns) {
  if (ready()) return true;
  const std::int64_t until = clock_ns() + ns;
  for (unsigned i = 1;; ++i) {
    if (ready()) return true;
    if (i < 512) {
      cpu_relax();
      continue;
    }
    ::sched_yield();
    if (clock_ns() >= until) return ready();
  }
}

}  // namespace mpaio::detail
