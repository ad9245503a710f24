#pragma once
// Test helpers: processes as /proc shows them (state, parent, name, signals, children, descendants,
// mappings, open descriptors), waiting for processes to end, reaping adopted orphans, and the /dev/shm
// entries a process made.
// (The Watchdog has its own async-signal-safe reader of /proc: support/watchdog.hpp.)

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "support/poll.hpp"

namespace mpaio_test {

/// What /proc/<pid>/stat says about a process.
struct ProcStat {
  char state = '?';  ///< 'R', 'S', 'Z' for a zombie...
  pid_t ppid = -1;
  pid_t pgrp = -1;
  long minflt = 0;  ///< minor page faults
  long utime = 0;   ///< clock ticks in user mode
  long stime = 0;   ///< clock ticks in kernel mode
  std::string comm;
};

/// The stat of `pid`, or nothing when it does not exist.
inline std::optional<ProcStat> proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse after the last ')'.
  const auto open = line.find('(');
  const auto close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos) return std::nullopt;
  ProcStat st;
  st.comm = line.substr(open + 1, close - open - 1);
  std::istringstream rest(line.substr(close + 1));
  long ignored = 0;
  rest >> st.state >> st.ppid >> st.pgrp;
  for (int field = 6; field <= 9; ++field) rest >> ignored;  // session, tty_nr, tpgid, flags
  rest >> st.minflt;
  for (int field = 11; field <= 13; ++field) rest >> ignored;  // cminflt, majflt, cmajflt
  rest >> st.utime >> st.stime;
  if (!rest) return std::nullopt;
  return st;
}

/// The state letter of `pid` ('R', 'S', 'Z' for a zombie...), or 0 when the process does not exist.
inline char process_state(pid_t pid) {
  const auto st = proc_stat(pid);
  return st ? st->state : '\0';
}

/// The parent pid of `pid`, or -1 when it is gone.
inline pid_t parent_of(pid_t pid) {
  const auto st = proc_stat(pid);
  return st ? st->ppid : -1;
}

/// The short command name of `pid` ("" when gone).
inline std::string comm_of(pid_t pid) {
  const auto st = proc_stat(pid);
  return st ? st->comm : std::string();
}

/// Whether `pid` has terminated: no such process, or a zombie waiting to be reaped.
inline bool process_gone(pid_t pid) {
  const char state = process_state(pid);
  return state == '\0' || state == 'Z' || state == 'X';
}

/// Whether `pid` catches `sig` (SigCgt in /proc/<pid>/status): its handler is installed.
inline bool catches_signal(pid_t pid, int sig) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("SigCgt:", 0) != 0) continue;
    const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
    return (mask >> (sig - 1)) & 1U;
  }
  return false;
}

/// Every process whose parent is `parent` (zombies included), in pid order, from a scan of /proc.
inline std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return out;
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid <= 0) continue;
    if (parent_of(static_cast<pid_t>(pid)) == parent) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

/// Every descendant of `root`, parents before their children.
inline std::vector<pid_t> descendants_of(pid_t root) {
  std::vector<pid_t> out = children_of(root);
  for (std::size_t i = 0; i < out.size(); ++i) {
    for (pid_t grandchild : children_of(out[i])) out.push_back(grandchild);
  }
  return out;
}

/// Describes processes for a failure message: "123 (mpaio-w0, S), 124 (gone)", or "none".
inline std::string describe_pids(const std::vector<pid_t>& pids) {
  std::string out;
  for (pid_t p : pids) {
    const auto st = proc_stat(p);
    if (!out.empty()) out += ", ";
    out += std::to_string(p) + (st ? " (" + st->comm + ", " + st->state + ")" : " (gone)");
  }
  return out.empty() ? "none" : out;
}

/// Waits until every pid in `pids` is gone (see process_gone); returns the ones still running after `limit`.
inline std::vector<pid_t> wait_gone(const std::vector<pid_t>& pids,
                                    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  std::vector<pid_t> left;
  poll_until(
      [&] {
        left.clear();
        for (pid_t p : pids) {
          if (!process_gone(p)) left.push_back(p);
        }
        return left.empty();
      },
      limit);
  return left;
}

/// While it lives, this process adopts its orphaned descendants (PR_SET_CHILD_SUBREAPER): a process leaked
/// by a child then becomes our child, where a test can check and reap it, instead of disappearing under
/// PID 1 (which may never reap it in a container).
class Subreaper {
 public:
  Subreaper() { ok_ = ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0; }
  ~Subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
  Subreaper(const Subreaper&) = delete;
  Subreaper& operator=(const Subreaper&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }

 private:
  bool ok_ = false;
};

/// Waits (up to 10 s: a bound against hangs) until `pid` has exited, reaping it once it is our child.
inline bool reaped_soon(pid_t pid) {
  return poll_until(
      [pid] {
        int status = 0;
        const pid_t rc = ::waitpid(pid, &status, WNOHANG);
        if (rc == pid) return true;                                         // exited, adopted and reaped by us
        return rc < 0 && errno == ECHILD && process_state(pid) == '\0';     // gone (reaped elsewhere)
      },
      std::chrono::seconds(10), std::chrono::milliseconds(1));
}

/// The open descriptors of `pid`, fd number -> what it refers to (/proc/<pid>/fd); empty when it is gone.
inline std::map<int, std::string> open_fds_of(pid_t pid) {
  std::map<int, std::string> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code link_ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), link_ec).string();
    if (target == dir) continue;  // the descriptor of this very listing, when `pid` is us
    out[std::atoi(entry.path().filename().c_str())] = target;
  }
  return out;
}

/// Describes descriptors for a failure message: "3 -> socket:[123], 4 -> anon_inode:[pidfd]".
inline std::string describe_fds(const std::map<int, std::string>& fds) {
  std::string out;
  for (const auto& [fd, target] : fds) out += (out.empty() ? "" : ", ") + std::to_string(fd) + " -> " + target;
  return out.empty() ? "none" : out;
}

/// How many distinct mpaio segments (files named mpaio-..., in /dev/shm or memfd) `pid` has mapped.
inline std::size_t mapped_segments(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::set<std::string> segments;
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find("mpaio-");
    if (at != std::string::npos && line.find('/') != std::string::npos) segments.insert(line.substr(line.find('/')));
  }
  return segments.size();
}

/// The /dev/shm/mpaio-<pid>-* names of the named segments `pid` created and did not unlink.
inline std::vector<std::string> shm_entries_of(pid_t pid) {
  std::vector<std::string> out;
  const std::string prefix = "mpaio-" + std::to_string(pid) + "-";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0) out.push_back(name);
  }
  return out;
}

}  // namespace mpaio_test
