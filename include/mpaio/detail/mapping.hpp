#pragma once
// Move-only owner of one mmap() region.

#include <cstddef>
#include <utility>

namespace mpaio::detail {

/// Owns a shared mapping of a file descriptor and unmaps it on destruction.
class Mapping {
 public:
  Mapping() noexcept = default;
  /// Maps `size` bytes of `fd` shared; writable when `writable`. Throws SystemError.
  Mapping(int fd, std::size_t size, bool writable);
  Mapping(Mapping&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  void reset() noexcept;

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace mpaio::detail
