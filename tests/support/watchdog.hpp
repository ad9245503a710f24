#pragma once
// Test helper: a deadline on a whole test, so that a hang fails the test instead of blocking CI.
//
//     TEST(Pool, Runs) {
//       mpaio_test::Watchdog watchdog(60);   // first line of any test that starts processes
//       ...
//     }
//
// If the test is still running when the limit passes, the watchdog prints which test hung, kills every
// descendant of this process (the pool's fork server and workers, forked children) with SIGKILL, and
// leaves with _exit(1). Destroying the Watchdog in time disarms it.
//
// It is a timer signal (SIGALRM from ITIMER_REAL), not a thread: the test program stays single-threaded
// for the forks it makes (the fork server is forked from the test's thread), and the expiry handler uses
// only async-signal-safe calls (no allocation, no stdio), so it works even when the hang is a deadlock
// inside malloc. One Watchdog at a time per process: a nested one leaves the outer deadline in force.

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>

namespace mpaio_test {

namespace watchdog_detail {

inline char test_name[512];
inline long limit_ms = 0;
inline pid_t armed_in = 0;  // the process whose timer is armed (a forked child has none)

inline void write_text(const char* text) noexcept {
  std::size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, text, left);
    if (n <= 0) return;
    text += n;
    left -= static_cast<std::size_t>(n);
  }
}

inline void write_number(long value) noexcept {
  char digits[24];
  char* p = digits + sizeof digits;
  *--p = '\0';
  const bool negative = value < 0;
  unsigned long v = negative ? 0UL - static_cast<unsigned long>(value) : static_cast<unsigned long>(value);
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  if (negative) *--p = '-';
  write_text(p);
}

/// The parent pid of `pid` from /proc/<pid>/stat, or -1; async-signal-safe.
inline pid_t parent_of(pid_t pid) noexcept {
  char path[40] = "/proc/";
  char digits[16];
  int n = 0;
  for (long v = pid; v != 0 && n < 15; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
  std::size_t at = 6;
  while (n > 0) path[at++] = digits[--n];
  std::memcpy(path + at, "/stat", 6);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buffer[1024];
  const ssize_t got = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (got <= 0) return -1;
  buffer[got] = '\0';
  const char* close = std::strrchr(buffer, ')');  // comm may hold spaces and parentheses
  if (close == nullptr || close[1] != ' ' || close[2] == '\0' || close[3] != ' ') return -1;
  long ppid = 0;
  for (const char* p = close + 4; *p >= '0' && *p <= '9'; ++p) ppid = ppid * 10 + (*p - '0');
  return static_cast<pid_t>(ppid);
}

inline constexpr std::size_t kMaxProcesses = 8192;
inline pid_t scan_pid[kMaxProcesses];
inline pid_t scan_parent[kMaxProcesses];
inline pid_t doomed[kMaxProcesses];

/// Kills every descendant of this process with SIGKILL; async-signal-safe.
inline void kill_descendants() noexcept {
  const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return;
  std::size_t count = 0;
  alignas(8) char buffer[8192];
  for (;;) {
    const ssize_t got = ::getdents64(dir, buffer, sizeof buffer);
    if (got <= 0) break;
    for (ssize_t off = 0; off < got;) {
      const auto* entry = reinterpret_cast<const dirent64*>(buffer + off);
      off += entry->d_reclen;
      long pid = 0;
      const char* p = entry->d_name;
      for (; *p >= '0' && *p <= '9'; ++p) pid = pid * 10 + (*p - '0');
      if (*p != '\0' || pid <= 0 || count == kMaxProcesses) continue;
      scan_pid[count] = static_cast<pid_t>(pid);
      scan_parent[count] = parent_of(static_cast<pid_t>(pid));
      ++count;
    }
  }
  ::close(dir);
  std::size_t n = 0;
  doomed[n++] = ::getpid();
  for (std::size_t i = 0; i < n; ++i) {  // breadth first: children, grandchildren...
    for (std::size_t j = 0; j < count && n < kMaxProcesses; ++j) {
      if (scan_parent[j] == doomed[i]) doomed[n++] = scan_pid[j];
    }
  }
  for (std::size_t i = 1; i < n; ++i) {
    write_text("*** WATCHDOG: SIGKILL ");
    write_number(doomed[i]);
    write_text("\n");
    ::kill(doomed[i], SIGKILL);
  }
}

inline void on_expiry(int) noexcept {
  write_text("\n*** WATCHDOG: test ");
  write_text(test_name);
  write_text(" still running after ");
  write_number(limit_ms);
  write_text(" ms: killing its processes and exiting\n");
  kill_descendants();  // twice: a process forked (by a fork server, say) during the first pass
  kill_descendants();
  ::_exit(1);
}

}  // namespace watchdog_detail

/// RAII deadline for the current test: on expiry, reports the test, kills this process's descendants
/// and exits with status 1.
class Watchdog {
 public:
  explicit Watchdog(int seconds) : Watchdog(std::chrono::seconds(seconds)) {}
  explicit Watchdog(std::chrono::milliseconds limit) {
    if (watchdog_detail::armed_in == ::getpid()) return;  // nested: the outer deadline stays in force
    const std::string name = current_test_name();
    const std::size_t n = std::min(name.size(), sizeof watchdog_detail::test_name - 1);
    std::memcpy(watchdog_detail::test_name, name.data(), n);
    watchdog_detail::test_name[n] = '\0';
    watchdog_detail::limit_ms = static_cast<long>(limit.count());
    struct sigaction action {};
    action.sa_handler = watchdog_detail::on_expiry;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGALRM, &action, &previous_);
    itimerval timer{};
    timer.it_value.tv_sec = static_cast<time_t>(limit.count() / 1000);
    timer.it_value.tv_usec = static_cast<suseconds_t>(limit.count() % 1000 * 1000);
    if (timer.it_value.tv_sec == 0 && timer.it_value.tv_usec == 0) timer.it_value.tv_usec = 1;
    ::setitimer(ITIMER_REAL, &timer, nullptr);
    watchdog_detail::armed_in = ::getpid();
    armed_ = true;
  }
  ~Watchdog() {
    if (!armed_) return;
    const itimerval off{};
    ::setitimer(ITIMER_REAL, &off, nullptr);
    ::sigaction(SIGALRM, &previous_, nullptr);
    watchdog_detail::armed_in = 0;
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  static std::string current_test_name() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    if (info == nullptr) return "(outside a test)";
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    if (info->value_param() != nullptr) name += std::string(" [") + info->value_param() + "]";
    return name;
  }

  bool armed_ = false;
  struct sigaction previous_ {};
};

}  // namespace mpaio_test
