#pragma once
/// @file shared_memory.hpp
/// SharedMemory: RAII owner of one OS shared-memory segment.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mpaio/detail/mapping.hpp"
#include "mpaio/detail/unique_fd.hpp"

namespace mpaio {

/// How a segment is reached by other processes.
enum class SegmentKind {
  /// memfd: no name in /dev/shm, so it cannot leak; reaches other processes by fork or fd passing.
  anonymous,
  /// POSIX shared memory under /dev/shm: other programs (numpy) attach it by name.
  named,
};

/// Access to request when attaching.
enum class Access { read_only, read_write };

/// Options for SharedMemory::create.
struct SegmentOptions {
  SegmentKind kind = SegmentKind::anonymous;
  /// Keep a named segment in /dev/shm after the creator is destroyed (someone else unlinks it).
  bool keep = false;
  /// Reserve every page now (posix_fallocate), so that a full /dev/shm fails at creation rather than with
  /// SIGBUS at first write. Only memory the library manages itself (channels that are written page by
  /// page as they are used) turns this off.
  bool reserve = true;
  /// The pid a named segment's name carries (0: this process's). remove_stale_segments() removes a name
  /// once its pid is gone, so a segment that must outlive its creator names the process it belongs to.
  pid_t name_pid = 0;
};

/// Move-only owner of one shared-memory segment and its mapping in this process.
///
/// A creator owns the name of a named segment and unlinks it on destruction unless told to keep it.
/// Pages are reserved at creation, so a full /dev/shm fails here with OutOfSharedMemory, never with
/// SIGBUS at first write. Every live segment of this process is listed in a process-wide registry,
/// which is how executors find the descriptor to pass to worker processes.
class SharedMemory {
 public:
  /// Creates a segment of `size` bytes with a random name ("/mpaio-<pid>-<64 random bits>", the pid being
  /// options.name_pid or this process's),
  /// O_CREAT|O_EXCL, mode 0600. Throws InvalidArgument for size 0, SystemError otherwise.
  static SharedMemory create(std::size_t size, SegmentOptions options = {});
  /// Attaches an existing segment by name: a named one through /dev/shm, an anonymous one if it
  /// lives in this process (or was inherited by fork). Throws SystemError (ENOENT, EACCES...).
  static SharedMemory attach(std::string_view name, Access access = Access::read_only);

  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();

  /// The segment's name: "/mpaio-..." for named segments, "memfd:mpaio-..." for anonymous ones.
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] SegmentKind kind() const noexcept { return kind_; }
  [[nodiscard]] std::size_t size() const noexcept { return mapping_.size(); }
  [[nodiscard]] std::byte* data() const noexcept { return mapping_.data(); }
  [[nodiscard]] bool writable() const noexcept { return writable_; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  /// Whether destroying this object unlinks the name.
  [[nodiscard]] bool owns_name() const noexcept { return owns_name_; }
  /// Leaves the name in /dev/shm when this object is destroyed.
  void keep() noexcept { owns_name_ = false; }
  /// Identifies this segment among every segment this process has created or attached.
  [[nodiscard]] std::uint64_t key() const noexcept { return key_; }

 private:
  SharedMemory(std::string name, SegmentKind kind, detail::UniqueFd fd, detail::Mapping mapping,
               bool writable, bool owns_name);
  void release() noexcept;

  std::string name_;
  SegmentKind kind_ = SegmentKind::anonymous;
  detail::UniqueFd fd_;
  detail::Mapping mapping_;
  bool writable_ = false;
  bool owns_name_ = false;
  std::uint64_t key_ = 0;
};

/// Removes the named mpaio segments in /dev/shm (`mpaio-<pid>-<random>`) whose creating process no longer
/// exists, e.g. after it was killed with SIGKILL; returns the names removed. A segment its creator kept
/// on purpose (SharedMemory::keep) is removed too once the creator is gone, so call this only where no
/// other program still relies on such a segment. Anonymous segments never need it. Also the command
/// `mpaio-cleanup`.
std::vector<std::string> remove_stale_segments();

}  // namespace mpaio
