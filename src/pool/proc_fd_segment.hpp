#pragma once
// ProcFdSegment: a SharedMemoryPool's anonymous data segment opened through /proc/<pid>/fd/<fd> of the
// process that holds it (same user, dumpable process), listed in the process-wide segment registry under
// its name like any SharedMemory.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "mpaio/detail/mapping.hpp"
#include "mpaio/detail/unique_fd.hpp"

namespace mpaio::detail {

class ProcFdSegment {
 public:
  /// Opens and maps the segment `name` of `size` bytes that process `pid` holds at descriptor `fd`. Throws
  /// SystemError when it cannot be opened, PoolCorrupted when the descriptor there is another file or has
  /// another size (the holder died and its pid was reused, say).
  ProcFdSegment(const std::string& name, pid_t pid, int fd, std::size_t size);
  ProcFdSegment(const ProcFdSegment&) = delete;
  ProcFdSegment& operator=(const ProcFdSegment&) = delete;
  ~ProcFdSegment();
  [[nodiscard]] std::byte* data() const noexcept { return mapping_.data(); }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

 private:
  UniqueFd fd_;
  Mapping mapping_;
  std::uint64_t key_ = 0;
};

}  // namespace mpaio::detail
