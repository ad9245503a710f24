#pragma once
// Process liveness read from /proc and pidfds: whether the process that started at a given time still runs
// (a pid is reused, so a pid alone names nothing for long), and a pidfd for it once /proc says it is that
// process. Only system calls (no stdio, no locale): safe in a background thread and around fork().

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "mpaio/detail/unique_fd.hpp"
#include "mpaio/error.hpp"

namespace mpaio::detail {

/// What /proc/<pid>/stat tells about a process.
struct ProcessStatus {
  enum class State {
    alive,    ///< it runs; start_time is valid
    dead,     ///< no such process (ENOENT, ESRCH), or a zombie
    unknown,  ///< /proc could not be read (EMFILE, ENFILE, ENOMEM...): ask again later, never take it for dead
  };
  State state = State::unknown;
  std::uint64_t start_time = 0;  ///< alive: clock ticks since boot (field 22)
  int error = 0;                 ///< unknown: errno of the call that failed (0: the line did not parse)

  /// Whether this is the live process that started at `start` (a reused pid has another start time).
  [[nodiscard]] bool is(std::uint64_t start) const noexcept { return state == State::alive && start_time == start; }
  /// Whether the process that started at `start` is certainly gone.
  [[nodiscard]] bool gone(std::uint64_t start) const noexcept {
    return state == State::dead || (state == State::alive && start_time != start);
  }
};

/// Reads /proc/<pid>/stat (a thread id works too: /proc answers for threads).
ProcessStatus process_status(pid_t pid) noexcept;

/// The error for a /proc/<pid>/stat that could not be read (ProcessStatus::State::unknown); `why` says
/// what it was read for.
SystemError unreadable_proc(pid_t pid, const ProcessStatus& status, const std::string& why);

/// This process's start time. Throws SystemError naming `what` when /proc cannot tell (no descriptor
/// left, say), rather than returning a time that would later make this process look dead.
std::uint64_t own_start_time(const char* what);

/// A pidfd for the process with `pid` that started at `start_time`, if that process still runs.
struct CheckedPidfd {
  enum class State {
    open,       ///< `fd` is its pidfd: readable once it has exited
    gone,       ///< it certainly no longer runs (no such pid, or the pid names another process or a thread)
    undecided,  ///< no descriptor or memory now, or /proc could not be read: ask again later
  };
  State state = State::undecided;
  UniqueFd fd;
};

/// Opens a pidfd for `pid` and checks it against /proc: a pidfd names whatever process has the pid now.
/// When pidfd_open itself fails for a reason other than resources (EINVAL: the pid is a thread id now),
/// /proc decides by the start time.
CheckedPidfd open_checked_pidfd(pid_t pid, std::uint64_t start_time) noexcept;

/// Whether this kernel has pidfd_open (Linux 5.3).
bool pidfd_supported() noexcept;

}  // namespace mpaio::detail
