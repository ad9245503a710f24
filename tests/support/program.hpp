#pragma once
// A program a test starts (execv) in a process group of its own, as a shell starts a foreground job, with
// its stderr and stdout on pipes the test reads.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace mpaio_test {

/// The bound on a program's exit after Ctrl-C: 2 s. Under ThreadSanitizer freeing the program's memory also
/// frees its shadow memory, several times its size: the demo's exit measured 1.1 s alone and 2.0-3.0 s beside
/// other tests there (0.2 s in the release build).
#if defined(__SANITIZE_THREAD__)
inline constexpr double kExitLimitMs = 5000.0;
#else
inline constexpr double kExitLimitMs = 2000.0;
#endif

/// A program started by the test, its stderr and stdout on pipes.
struct Program {
  pid_t pid = -1;
  int err = -1;
  int out = -1;

  /// Reads what is left on a pipe (non-blocking: call after the program exited).
  static std::string drain(int fd) {
    std::string text;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    return text;
  }
  Program() = default;
  Program(Program&& other) noexcept
      : pid(std::exchange(other.pid, -1)), err(std::exchange(other.err, -1)), out(std::exchange(other.out, -1)) {}
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  Program& operator=(Program&&) = delete;
  ~Program() {
    if (err >= 0) ::close(err);
    if (out >= 0) ::close(out);
  }
};

/// Starts `argv` in a process group of its own (as a shell does for a foreground job).
inline Program start(const std::vector<std::string>& argv) {
  int err[2];
  int out[2];
  if (::pipe2(err, O_CLOEXEC | O_NONBLOCK) != 0 || ::pipe2(out, O_CLOEXEC | O_NONBLOCK) != 0) return {};
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(err[1], STDERR_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    // The pipes were non-blocking for our reads; the demo writes blocking.
    ::fcntl(STDERR_FILENO, F_SETFL, 0);
    ::fcntl(STDOUT_FILENO, F_SETFL, 0);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(err[1]);
  ::close(out[1]);
  if (pid > 0) ::setpgid(pid, pid);  // also from here, so that it holds before we signal the group
  Program p;
  p.pid = pid;
  p.err = err[0];
  p.out = out[0];
  return p;
}

}  // namespace mpaio_test
