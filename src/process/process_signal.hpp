#pragma once
// The one way mpaio signals a process it started: through its pidfd, so that a pid reused by another
// process is never signalled by mistake.

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>

namespace mpaio::detail {

/// Sends `sig` to the process behind `pidfd`; false when it is already gone (or the pidfd is empty).
inline bool signal_process(int pidfd, int sig) noexcept {
  return pidfd >= 0 && ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
}

/// Whether the process behind `pidfd` has exited (its pidfd is readable), without waiting.
inline bool process_exited(int pidfd) noexcept {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace mpaio::detail
