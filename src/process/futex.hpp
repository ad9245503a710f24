#pragma once
// Futex wait/wake on a 32-bit word in shared memory (process-shared: no FUTEX_PRIVATE_FLAG).

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace mpaio::detail {

/// Sleeps while *word == expected, at most `timeout` (nullptr: no limit). Spurious returns are possible.
inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, const timespec* timeout = nullptr) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, timeout, nullptr, 0);
}

/// Wakes up to `count` sleepers on `word`.
inline void futex_wake(std::atomic<std::uint32_t>* word, int count = 1) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

/// A spin-wait hint for the CPU.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace mpaio::detail
