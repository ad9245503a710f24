#include "process/child_setup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>

#include "process/crash_report.hpp"

namespace mpaio::detail {

namespace {

bool kept(const std::vector<int>& keep, int fd) { return fd <= 2 || std::find(keep.begin(), keep.end(), fd) != keep.end(); }

/// Closes every descriptor but those kept (the fallback when /proc or /dev/null cannot be opened).
void close_all_but(std::vector<int> keep) noexcept {
  keep.insert(keep.end(), {0, 1, 2});
  std::sort(keep.begin(), keep.end());
  unsigned next = 0;
  for (int fd : keep) {
    if (fd < 0 || static_cast<unsigned>(fd) < next) continue;
    if (static_cast<unsigned>(fd) > next) ::syscall(SYS_close_range, next, static_cast<unsigned>(fd) - 1, 0);
    next = static_cast<unsigned>(fd) + 1;
  }
  ::syscall(SYS_close_range, next, ~0U, 0);
}

/// Points every descriptor but those kept at /dev/null.
void neutralise_descriptors(const std::vector<int>& keep) noexcept {
  const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  const int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (devnull < 0 || dir < 0) {
    close_all_but(keep);
    return;
  }
  std::vector<int> open_fds;
  alignas(dirent64) char buffer[4096];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dir, buffer, sizeof buffer);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      const auto* entry = reinterpret_cast<const dirent64*>(buffer + at);
      at += entry->d_reclen;
      if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
      open_fds.push_back(std::atoi(entry->d_name));
    }
  }
  ::close(dir);
  for (int fd : open_fds) {
    if (fd != devnull && fd != dir && !kept(keep, fd)) ::dup3(devnull, fd, O_CLOEXEC);
  }
  if (!kept(keep, devnull)) ::close(devnull);
}

void reset_signals() noexcept {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);  // fails harmlessly for KILL/STOP
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ign, nullptr);  // Ctrl-C is the caller's to handle
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

}  // namespace

std::string_view child_exit_meaning(int code) noexcept {
  switch (static_cast<ChildExit>(code)) {
    case ChildExit::parent_gone: return "its parent was gone before it started";
    case ChildExit::protocol_error: return "protocol error: it received a message it could not understand";
    case ChildExit::missing_descriptor: return "protocol error: a descriptor it was promised did not arrive";
    case ChildExit::setup_failed: return "it could not set itself up (a mapping, its socket or its channel failed)";
    case ChildExit::fork_server_failed: return "the fork server failed";
    case ChildExit::entry_failed: return "its entry point threw";
    case ChildExit::stage_init_failed: return "its stage's constructor threw";
    default: return {};
  }
}

void set_up_child(const ChildSetup& setup) noexcept {
  reset_signals();
  if (setup.parent != 0) {
    // Die with the parent; check it did not die before the arming (we would then be adopted already).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != setup.parent) ::_exit(static_cast<int>(ChildExit::parent_gone));
  }
  std::vector<int> keep = setup.keep_fds;
  if (setup.crash_fd >= 0) keep.push_back(setup.crash_fd);
  neutralise_descriptors(keep);
  if (!setup.name.empty()) ::prctl(PR_SET_NAME, setup.name.c_str());
  if (setup.cpu >= 0 && setup.cpu < CPU_SETSIZE) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(setup.cpu, &set);
    ::sched_setaffinity(0, sizeof set, &set);
  }
  if (setup.crash_fd >= 0) install_crash_reporter(setup.crash_fd);
}

}  // namespace mpaio::detail
