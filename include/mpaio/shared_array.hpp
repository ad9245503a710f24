#pragma once
/// @file shared_array.hpp
/// SharedArray<T>: a typed array that owns (or attaches) the shared-memory segment it lives in.

#include <algorithm>
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "mpaio/array_meta.hpp"
#include "mpaio/array_view.hpp"
#include "mpaio/dtype.hpp"
#include "mpaio/shared_memory.hpp"

namespace mpaio {

/// A row-major array of T in a shared-memory segment, usable from other processes through meta().
///
/// Move-only; destroying the creator of a named array unlinks its segment (see SharedMemory).
template <Element T>
class SharedArray {
 public:
  /// Creates a zero-filled array of the given shape in a new segment.
  ///
  /// A shape with a zero extent ({0}, {0, 3}) gives an empty array: it still has a segment, of one
  /// element's bytes (a mapping cannot be empty), so that its name, metadata and descriptor work like any
  /// other array's; its workers get zero chunks. Throws InvalidArgument for an overflowing shape.
  static SharedArray create(std::vector<std::size_t> shape, SegmentOptions options = {}) {
    ArrayMeta meta{{}, dtype_of<T>(), std::move(shape), 0};
    const std::size_t bytes = meta.nbytes();
    SharedMemory segment = SharedMemory::create(bytes != 0 ? bytes : sizeof(T), options);
    meta.shm_name = segment.name();
    return SharedArray(std::move(segment), std::move(meta));
  }
  /// Creates a 1-d array holding a copy of `values`.
  static SharedArray from(std::span<const T> values, SegmentOptions options = {}) {
    return from(values, {values.size()}, options);
  }
  /// Creates an array of the given shape holding a copy of `values` (sizes must agree).
  static SharedArray from(std::span<const T> values, std::vector<std::size_t> shape, SegmentOptions options = {}) {
    SharedArray array = create(std::move(shape), options);
    if (values.size() != array.size()) {
      throw InvalidArgument("SharedArray::from: " + std::to_string(values.size()) + " values for a shape of " +
                            std::to_string(array.size()) + " elements");
    }
    std::copy(values.begin(), values.end(), array.data());
    return array;
  }
  /// Attaches the array `meta` describes; throws InvalidArgument when its dtype is not T's or it does not
  /// fit its segment, SystemError when the segment cannot be opened.
  static SharedArray attach(const ArrayMeta& meta, Access access = Access::read_only) {
    meta.check_dtype(dtype_of<T>());
    SharedMemory segment = SharedMemory::attach(meta.shm_name, access);
    meta.check_fits(segment.size());
    if (meta.offset % alignof(T) != 0) {
      throw InvalidArgument("SharedArray::attach: offset " + std::to_string(meta.offset) + " of array " +
                            meta.shm_name + " is not aligned for " + meta.dtype.typestr());
    }
    return SharedArray(std::move(segment), meta);
  }

  [[nodiscard]] const ArrayMeta& meta() const noexcept { return meta_; }
  [[nodiscard]] SharedMemory& segment() noexcept { return segment_; }
  [[nodiscard]] const SharedMemory& segment() const noexcept { return segment_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::span<const std::size_t> shape() const noexcept { return meta_.shape; }
  /// Pointer to element 0; writing through it needs a read-write segment.
  [[nodiscard]] T* data() noexcept { return reinterpret_cast<T*>(segment_.data() + meta_.offset); }
  [[nodiscard]] const T* data() const noexcept { return reinterpret_cast<const T*>(segment_.data() + meta_.offset); }
  [[nodiscard]] T& operator[](std::size_t i) noexcept { return data()[i]; }
  [[nodiscard]] const T& operator[](std::size_t i) const noexcept { return data()[i]; }
  [[nodiscard]] T* begin() noexcept { return data(); }
  [[nodiscard]] T* end() noexcept { return data() + size_; }
  [[nodiscard]] const T* begin() const noexcept { return data(); }
  [[nodiscard]] const T* end() const noexcept { return data() + size_; }
  [[nodiscard]] ArrayView<T> view() noexcept { return {data(), meta_.shape}; }
  [[nodiscard]] ArrayView<const T> view() const noexcept { return {data(), meta_.shape}; }

 private:
  SharedArray(SharedMemory segment, ArrayMeta meta)
      : segment_(std::move(segment)), meta_(std::move(meta)), size_(meta_.size()) {}

  SharedMemory segment_;
  ArrayMeta meta_;
  std::size_t size_ = 0;
};

}  // namespace mpaio
