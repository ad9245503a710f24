#include "pool/proc_fd_segment.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string_view>

#include <fmt/format.h>

#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/detail/syscall.hpp"
#include "mpaio/pool_error.hpp"

namespace mpaio::detail {

namespace {

/// The path /proc/<pid>/fd/<fd> links to when it is the segment `name`: "/memfd:mpaio-..." for a memfd, the
/// file under /dev/shm for a named segment (an anonymous pool's segments grown by other processes), either
/// one followed by " (deleted)" once unlinked.
bool is_segment_path(std::string_view path, std::string_view name) {
  if (path.ends_with(" (deleted)")) path.remove_suffix(10);
  if (name.starts_with('/')) return path.starts_with("/dev/shm") && path.substr(8) == name;
  return path.starts_with('/') && path.substr(1) == name;
}

}  // namespace

ProcFdSegment::ProcFdSegment(const std::string& name, pid_t pid, int fd, std::size_t size) {
  const std::string path = fmt::format("/proc/{}/fd/{}", pid, fd);
  fd_ = UniqueFd(sys("open", [&] { return ::open(path.c_str(), O_RDWR | O_CLOEXEC); }, "path", path, "segment", name));
  // Once the holder died and its pid was reused, another file may be open at that number: check the one
  // opened (through this process's own descriptor, so that nothing can change between the check and the map).
  const std::string own = fmt::format("/proc/self/fd/{}", fd_.get());
  char target[256];
  const ssize_t n = sys("readlink", [&] { return ::readlink(own.c_str(), target, sizeof target); }, "path", own);
  const std::string_view opened(target, static_cast<std::size_t>(n));
  if (!is_segment_path(opened, name)) {
    throw PoolCorrupted(fmt::format("pool segment {} opened through {} is {} (the descriptor was reused?)", name, path,
                                    opened));
  }
  struct stat st {};
  sys("fstat", [&] { return ::fstat(fd_.get(), &st); }, "path", path);
  if (static_cast<std::size_t>(st.st_size) != size) {
    throw PoolCorrupted(fmt::format("pool segment {} opened through {} has {} bytes, {} expected (the descriptor was "
                                    "reused?)", name, path, st.st_size, size));
  }
  mapping_ = Mapping(fd_.get(), size, true);
  key_ = register_segment(name, fd_.get(), mapping_.data(), size, true);
}

ProcFdSegment::~ProcFdSegment() { unregister_segment(key_); }

}  // namespace mpaio::detail
