#include "mpaio/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/detail/syscall.hpp"

namespace mpaio {

namespace detail {

UniqueFd dup_fd(int fd) {
  return UniqueFd(sys("fcntl", [&] { return ::fcntl(fd, F_DUPFD_CLOEXEC, 0); }, "fd", fd, "cmd", "F_DUPFD_CLOEXEC"));
}

Mapping::Mapping(int fd, std::size_t size, bool writable) {
  const int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* p = ::mmap(nullptr, size, prot, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    throw SystemError(describe_call("mmap", "fd", fd, "size", size, "prot", writable ? "rw" : "r"), errno);
  }
  data_ = static_cast<std::byte*>(p);
  size_ = size;
}

void Mapping::reset() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace detail

namespace {

constexpr std::string_view kMemfdPrefix = "memfd:";

std::string random_suffix(pid_t pid) {
  std::uint64_t bits = 0;
  detail::sys("getrandom", [&] { return ::getrandom(&bits, sizeof bits, 0); }, "bytes", sizeof bits);
  return fmt::format("mpaio-{}-{:016x}", pid, bits);
}

std::uint64_t shm_available_bytes() {
  struct statvfs st {};
  if (::statvfs("/dev/shm", &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

/// Sizes the new segment and reserves its pages so that a full /dev/shm fails now, not with SIGBUS later.
void size_and_reserve(int fd, std::size_t size, const std::string& name, bool reserve) {
  detail::sys("ftruncate", [&] { return ::ftruncate(fd, static_cast<off_t>(size)); }, "name", name, "size", size);
  if (!reserve) return;
  const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
  if (err == ENOSPC || err == ENOMEM) {
    throw OutOfSharedMemory(detail::describe_call("posix_fallocate", "name", name, "size", size), err, size,
                            shm_available_bytes());
  }
  if (err != 0) throw SystemError(detail::describe_call("posix_fallocate", "name", name, "size", size), err);
}

/// Unlinks a freshly created name unless creation completes.
struct UnlinkGuard {
  std::string posix_name;
  bool armed = true;
  ~UnlinkGuard() {
    if (armed && !posix_name.empty()) ::shm_unlink(posix_name.c_str());
  }
};

}  // namespace

SharedMemory::SharedMemory(std::string name, SegmentKind kind, detail::UniqueFd fd, detail::Mapping mapping,
                           bool writable, bool owns_name)
    : name_(std::move(name)),
      kind_(kind),
      fd_(std::move(fd)),
      mapping_(std::move(mapping)),
      writable_(writable),
      owns_name_(owns_name) {
  key_ = detail::register_segment(name_, fd_.get(), mapping_.data(), mapping_.size(), writable_);
}

SharedMemory SharedMemory::create(std::size_t size, SegmentOptions options) {
  if (size == 0) throw InvalidArgument("SharedMemory::create: size must be greater than 0");
  for (int attempt = 0;; ++attempt) {
    const std::string suffix = random_suffix(options.name_pid != 0 ? options.name_pid : ::getpid());
    if (options.kind == SegmentKind::anonymous) {
      detail::UniqueFd fd(detail::sys("memfd_create", [&] { return ::memfd_create(suffix.c_str(), MFD_CLOEXEC); },
                                      "name", suffix));
      const std::string name = std::string(kMemfdPrefix) + suffix;
      size_and_reserve(fd.get(), size, name, options.reserve);
      detail::Mapping mapping(fd.get(), size, true);
      return SharedMemory(name, SegmentKind::anonymous, std::move(fd), std::move(mapping), true, false);
    }
    const std::string name = fmt::format("/{}", suffix);
    const int raw = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (raw < 0) {
      if (errno == EEXIST && attempt < 8) continue;  // a 64-bit collision: draw again
      throw SystemError(detail::describe_call("shm_open", "name", name, "flags", "O_RDWR|O_CREAT|O_EXCL"), errno);
    }
    detail::UniqueFd fd(raw);
    UnlinkGuard guard{name};
    size_and_reserve(fd.get(), size, name, options.reserve);
    detail::Mapping mapping(fd.get(), size, true);
    guard.armed = false;
    return SharedMemory(name, SegmentKind::named, std::move(fd), std::move(mapping), true, !options.keep);
  }
}

SharedMemory SharedMemory::attach(std::string_view name, Access access) {
  if (detail::bare_segment_name(name).empty()) throw InvalidArgument("SharedMemory::attach: empty segment name");
  const bool writable = access == Access::read_write;
  detail::UniqueFd fd;
  std::string shown;
  SegmentKind kind = SegmentKind::named;
  if (name.starts_with(kMemfdPrefix)) {
    // An anonymous segment has no name outside this process: find the descriptor we (or a forked-from
    // ancestor) hold.
    auto found = detail::find_segment(name);
    if (!found) {
      throw SystemError(detail::describe_call("SharedMemory::attach", "name", name), ENOENT,
                        "anonymous segments are reachable only from the process that holds them and its forks");
    }
    if (writable && !found->writable) {
      throw SystemError(detail::describe_call("SharedMemory::attach", "name", name, "access", "read_write"), EACCES,
                        "this process holds the segment read-only");
    }
    fd = detail::dup_segment_fd(found->key);
    shown = std::string(name);
    kind = SegmentKind::anonymous;
  } else {
    shown = fmt::format("/{}", detail::bare_segment_name(name));
    const int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    fd = detail::UniqueFd(detail::sys("shm_open", [&] { return ::shm_open(shown.c_str(), flags, 0); }, "name", shown,
                                      "access", writable ? "read_write" : "read_only"));
  }
  struct stat st {};
  detail::sys("fstat", [&] { return ::fstat(fd.get(), &st); }, "name", shown);
  if (st.st_size == 0) {
    throw InvalidArgument(fmt::format("SharedMemory::attach: segment {} is empty (size 0)", shown));
  }
  detail::Mapping mapping(fd.get(), static_cast<std::size_t>(st.st_size), writable);
  return SharedMemory(shown, kind, std::move(fd), std::move(mapping), writable, false);
}

SharedMemory::SharedMemory(SharedMemory&& other) noexcept
    : name_(std::move(other.name_)),
      kind_(other.kind_),
      fd_(std::move(other.fd_)),
      mapping_(std::move(other.mapping_)),
      writable_(other.writable_),
      owns_name_(std::exchange(other.owns_name_, false)),
      key_(std::exchange(other.key_, 0)) {}

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  if (this != &other) {
    release();
    name_ = std::move(other.name_);
    kind_ = other.kind_;
    fd_ = std::move(other.fd_);
    mapping_ = std::move(other.mapping_);
    writable_ = other.writable_;
    owns_name_ = std::exchange(other.owns_name_, false);
    key_ = std::exchange(other.key_, 0);
  }
  return *this;
}

SharedMemory::~SharedMemory() { release(); }

void SharedMemory::release() noexcept {
  if (key_ != 0) detail::unregister_segment(key_);
  key_ = 0;
  if (owns_name_ && kind_ == SegmentKind::named) ::shm_unlink(name_.c_str());
  owns_name_ = false;
  mapping_.reset();
  fd_.reset();
}

std::vector<std::string> remove_stale_segments() {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string name = entry.path().filename().string();
    long long pid = 0;
    char rest = 0;
    // mpaio-<pid>-<16 hex digits>
    if (std::sscanf(name.c_str(), "mpaio-%lld-%*16[0-9a-f]%c", &pid, &rest) != 1 || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) continue;  // its creator still runs
    const std::string posix_name = "/" + name;
    if (::shm_unlink(posix_name.c_str()) == 0) removed.push_back(posix_name);
  }
  return removed;
}

}  // namespace mpaio
