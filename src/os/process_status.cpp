#include "os/process_status.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "mpaio/detail/syscall.hpp"

namespace mpaio::detail {

namespace {

int pidfd_open(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

ProcessStatus process_status(pid_t pid) noexcept {
  using State = ProcessStatus::State;
  // ENOENT: no /proc/<pid>; ESRCH: it exited between open() and read(). Anything else says nothing.
  auto failed = [](int err) {
    return err == ENOENT || err == ESRCH ? ProcessStatus{State::dead, 0, err} : ProcessStatus{State::unknown, 0, err};
  };
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failed(errno);
  char line[1024];
  ssize_t got = -1;
  do {
    got = ::read(fd, line, sizeof line - 1);
  } while (got < 0 && errno == EINTR);
  const int read_error = errno;
  ::close(fd);
  if (got < 0) return failed(read_error);
  if (got == 0) return ProcessStatus{State::unknown, 0, 0};
  line[got] = '\0';
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields count from the last ')'.
  const char* p = std::strrchr(line, ')');
  if (p == nullptr || p[1] != ' ') return ProcessStatus{State::unknown, 0, 0};
  p += 2;
  if (*p == 'Z' || *p == 'X' || *p == 'x') return ProcessStatus{State::dead, 0, 0};
  for (int field = 3; field < 22; ++field) {  // skip to field 22, starttime
    p = std::strchr(p, ' ');
    if (p == nullptr) return ProcessStatus{State::unknown, 0, 0};
    ++p;
  }
  if (*p < '0' || *p > '9') return ProcessStatus{State::unknown, 0, 0};
  std::uint64_t start = 0;
  for (; *p >= '0' && *p <= '9'; ++p) start = start * 10 + static_cast<std::uint64_t>(*p - '0');
  return ProcessStatus{State::alive, start, 0};
}

SystemError unreadable_proc(pid_t pid, const ProcessStatus& status, const std::string& why) {
  return SystemError(describe_call("read", "path", fmt::format("/proc/{}/stat", pid)),
                     status.error != 0 ? status.error : EIO, why);
}

std::uint64_t own_start_time(const char* what) {
  const pid_t pid = ::getpid();
  const ProcessStatus status = process_status(pid);
  if (status.state != ProcessStatus::State::alive) {
    throw unreadable_proc(pid, status, fmt::format("{}: cannot read this process's start time", what));
  }
  return status.start_time;
}

CheckedPidfd open_checked_pidfd(pid_t pid, std::uint64_t start_time) noexcept {
  using State = CheckedPidfd::State;
  UniqueFd fd(pidfd_open(pid));
  if (!fd) {
    const int err = errno;
    if (err == ESRCH) return {State::gone, {}};                                   // gone (and reaped) already
    if (err == EMFILE || err == ENFILE || err == ENOMEM) return {State::undecided, {}};
    // EINVAL: the pid names a thread now (the process died and its pid was reused as a thread id), and
    // pidfds are for processes only. /proc tells by the start time.
    return {process_status(pid).gone(start_time) ? State::gone : State::undecided, {}};
  }
  // The pidfd names whatever process has the pid now: it is the one wanted only if the start time matches.
  const ProcessStatus status = process_status(pid);
  if (status.is(start_time)) return {State::open, std::move(fd)};
  return {status.gone(start_time) ? State::gone : State::undecided, {}};
}

bool pidfd_supported() noexcept {
  static const bool yes = [] {
    const int fd = pidfd_open(::getpid());
    if (fd < 0) return false;
    ::close(fd);
    return true;
  }();
  return yes;
}

}  // namespace mpaio::detail
