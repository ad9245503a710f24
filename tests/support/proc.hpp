#pragma once
// Test helpers: processes as /proc shows them (parents, children, descendants, state).

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace mpaio_test {

/// The state letter of /proc/<pid>/stat ('R', 'S', 'Z' for a zombie...), or 0 when the process does not exist.
inline char process_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse after the last ')'.
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '?';
}

/// The parent pid of `pid` from /proc/<pid>/stat, or -1 when it is gone.
inline pid_t parent_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse after the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 1));
  char state = 0;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return rest ? ppid : -1;
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

/// Whether `pid` has exited (gone, or a zombie waiting for a reaper that is not us), polling up to 10 s.
/// A bound against hangs, not a timing assertion.
inline bool exits_soon(pid_t pid) {
  for (int i = 0; i < 10'000; ++i) {
    const char state = process_state(pid);
    if (state == 0 || state == 'Z' || state == 'X') return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

/// While it lives, this process adopts its orphaned descendants (PR_SET_CHILD_SUBREAPER), so that a test
/// can reap them itself instead of leaving zombies to init.
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
  for (int i = 0; i < 10'000; ++i) {
    int status = 0;
    const pid_t rc = ::waitpid(pid, &status, WNOHANG);
    if (rc == pid) return true;                                     // exited, adopted and reaped by us
    if (rc < 0 && errno == ECHILD && process_state(pid) == 0) return true;  // gone (reaped elsewhere)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace mpaio_test
