#pragma once
/// @file array_view.hpp
/// ArrayView<T>: a non-owning, typed, row-major view of an array.

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "mpaio/error.hpp"
#include "mpaio/range.hpp"

namespace mpaio {

/// Non-owning view of `size()` elements of type T in row-major order, with shape `shape()`.
///
/// Cheap to copy. The data must outlive the view (it belongs to a SharedArray, or to the worker process's
/// mapping while `process` runs), and so must the shape a view is made with; a view made by rows_of()
/// holds its own shape instead, shared with its copies, so that it stays valid however long they live.
template <class T>
class ArrayView {
 public:
  ArrayView() = default;
  /// Views `data` with the extents in `shape` (kept by reference).
  ArrayView(T* data, std::span<const std::size_t> shape) noexcept : data_(data), shape_(shape) {
    size_ = 1;
    for (std::size_t extent : shape_) size_ *= extent;
  }
  /// A const view of a mutable one.
  operator ArrayView<const T>() const noexcept {  // NOLINT(google-explicit-constructor)
    return ArrayView<const T>(data_, shape_, owned_shape_);
  }

  [[nodiscard]] T* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::span<const std::size_t> shape() const noexcept { return shape_; }
  [[nodiscard]] std::size_t ndim() const noexcept { return shape_.size(); }
  /// Element i in flat row-major order (unchecked, like std::span).
  [[nodiscard]] T& operator[](std::size_t i) const noexcept { return data_[i]; }
  [[nodiscard]] T* begin() const noexcept { return data_; }
  [[nodiscard]] T* end() const noexcept { return data_ + size_; }
  [[nodiscard]] std::span<T> flat() const noexcept { return {data_, size_}; }

  /// Number of rows along the first axis (the size of a 1-d array).
  [[nodiscard]] std::size_t rows() const noexcept { return shape_.empty() ? 1 : shape_[0]; }
  /// Elements per row (product of shape[1:]; 1 for a 1-d array).
  [[nodiscard]] std::size_t row_size() const noexcept {
    std::size_t n = 1;
    for (std::size_t i = 1; i < shape_.size(); ++i) n *= shape_[i];
    return n;
  }
  /// Row i of the first axis, flattened; throws InvalidArgument when i >= rows().
  [[nodiscard]] std::span<T> row(std::size_t i) const {
    if (i >= rows()) {
      throw InvalidArgument("ArrayView::row: row " + std::to_string(i) + " of " + std::to_string(rows()));
    }
    const std::size_t n = row_size();
    return {data_ + i * n, n};
  }
  /// The elements of `r`; throws InvalidArgument if r is reversed or reaches past size().
  [[nodiscard]] std::span<T> slice(Range r) const {
    if (r.start > r.end || r.end > size_) {
      throw InvalidArgument("ArrayView::slice: range [" + std::to_string(r.start) + ", " + std::to_string(r.end) +
                            ") outside an array of " + std::to_string(size_) + " elements");
    }
    return {data_ + r.start, r.size()};
  }
  /// The rows of the first axis that `r` covers, as a view of shape {r.size() / row_size(), shape[1:]...}:
  /// what a chunk of DataIterator::rows is. Throws InvalidArgument if r is reversed, reaches past size(),
  /// or starts or ends inside a row, and for a 0-d array.
  [[nodiscard]] ArrayView rows_of(Range r) const {
    if (shape_.empty()) throw InvalidArgument("ArrayView::rows_of: a 0-d array has no rows");
    if (r.start > r.end || r.end > size_) {
      throw InvalidArgument("ArrayView::rows_of: range [" + std::to_string(r.start) + ", " + std::to_string(r.end) +
                            ") outside an array of " + std::to_string(size_) + " elements");
    }
    const std::size_t n = row_size();
    if (n != 0 && (r.start % n != 0 || r.end % n != 0)) {
      throw InvalidArgument("ArrayView::rows_of: range [" + std::to_string(r.start) + ", " + std::to_string(r.end) +
                            ") does not cover whole rows of " + std::to_string(n) + " elements");
    }
    auto shape = std::make_shared<std::size_t[]>(shape_.size());
    shape[0] = n == 0 ? 0 : r.size() / n;
    for (std::size_t i = 1; i < shape_.size(); ++i) shape[i] = shape_[i];
    const std::span<const std::size_t> extents(shape.get(), shape_.size());
    return ArrayView(data_ + r.start, extents, std::move(shape));
  }

 private:
  template <class>
  friend class ArrayView;

  /// A view whose shape `owned` holds (or, when `owned` is null, the caller).
  ArrayView(T* data, std::span<const std::size_t> shape, std::shared_ptr<const std::size_t[]> owned) noexcept
      : ArrayView(data, shape) {
    owned_shape_ = std::move(owned);
  }

  T* data_ = nullptr;
  std::span<const std::size_t> shape_;
  std::size_t size_ = 0;
  std::shared_ptr<const std::size_t[]> owned_shape_;  // set by rows_of: the storage of shape_
};

}  // namespace mpaio
