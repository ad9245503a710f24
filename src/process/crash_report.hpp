#pragma once
// Where a child was when a fatal signal killed it. The child's handler records the return addresses of
// its stack (async-signal-safe: backtrace() is loaded beforehand, write() is the only call after it) into
// a pipe; the fork server, which has the same code at the same addresses (the child is its fork), turns
// them into function names, files and lines once it has reaped the child.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace mpaio::detail {

/// Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT that write the stack's addresses to
/// `fd` and let the signal kill the process as it would have (the exit status still names it).
void install_crash_reporter(int fd) noexcept;

/// Loads the unwinder the handlers use (glibc loads libgcc_s and indexes its unwind tables on the first
/// backtrace()). Called once in the program before its first fork server, so that fork servers and their
/// children inherit it ready: each would otherwise do it again when installing its reporter (a handler must
/// not load a library), which costs every worker's start-up.
void load_unwinder() noexcept;

/// What the handler wrote, read back from the pipe: the signal and the addresses, innermost first.
struct CrashFrames {
  int signal = 0;
  std::uint32_t count = 0;
  std::uintptr_t address[64] = {};
};

/// Reads the frames a crashed child wrote to `fd` (non-blocking); count 0 when there are none.
CrashFrames read_crash_frames(int fd) noexcept;

/// The frames as text, one line each ("#0 function at file:line"), resolved in this process (which must map
/// the same code at the same addresses); best effort: a frame that cannot be resolved shows its address.
/// The trace stops before the first frame whose function name starts with `stop_at` (where the child's own
/// machinery begins: what lies below is the same for every crash).
std::string describe_frames(const CrashFrames& frames, std::string_view stop_at);

}  // namespace mpaio::detail
