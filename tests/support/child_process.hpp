#pragma once
// Test helper: run a function in a forked child under a deadline, so that a bug fails instead of hanging.
//
// The child runs `body` and leaves with _exit(its return value) (an escaping exception gives exit code
// 120), never returning into GoogleTest. wait_child() polls waitpid() until the deadline, then SIGKILLs the
// child and reports a timeout. spawn_child() + wait_child() for a child the test talks to while it runs;
// run_in_child() for one it only waits for.

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <utility>

namespace mpaio_test {

/// How a watched child ended.
struct ChildResult {
  bool timed_out = false;
  bool exited = false;    ///< WIFEXITED
  int exit_code = -1;     ///< WEXITSTATUS when exited
  int signal = 0;         ///< WTERMSIG when killed by a signal
  std::string describe() const {
    if (timed_out) return "timed out (killed by the watchdog)";
    if (exited) return "exited with code " + std::to_string(exit_code);
    return "killed by signal " + std::to_string(signal);
  }
  /// The child exited normally with `code`.
  [[nodiscard]] bool exited_with(int code) const { return !timed_out && exited && exit_code == code; }
};

/// Waits for `pid` until `timeout`, then SIGKILLs and reaps it.
inline ChildResult wait_child(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  ChildResult result;
  if (pid <= 0) return result;  // fork failed: never waitpid(-1), which would reap any child
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    const pid_t rc = ::waitpid(pid, &status, WNOHANG);
    if (rc == pid) break;
    if (rc < 0 && errno != EINTR) {
      std::perror("waitpid");
      return result;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      result.timed_out = true;
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

/// Forks; the child runs `body()` (returning its exit code) and _exits; returns the child's pid (-1 when
/// fork failed) at once. Reap it with wait_child().
template <class Body>
pid_t spawn_child(Body&& body) {
  std::fflush(nullptr);  // do not let the child flush the parent's buffered output a second time
  const pid_t pid = ::fork();
  if (pid < 0) std::perror("fork");
  if (pid != 0) return pid;
  int code = 120;
  try {
    code = body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child: uncaught exception: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "child: uncaught exception\n");
  }
  std::fflush(nullptr);
  ::_exit(code);
}

/// Forks; the child runs `body()` (returning its exit code) and _exits; the parent waits with a deadline.
template <class Body>
ChildResult run_in_child(Body&& body, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const pid_t pid = spawn_child(std::forward<Body>(body));
  if (pid < 0) return {};
  return wait_child(pid, timeout);
}

}  // namespace mpaio_test
