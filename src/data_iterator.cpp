#include "mpaio/data_iterator.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "mpaio/error.hpp"

namespace mpaio {

DataIterator::DataIterator(ArrayMeta meta, Mode mode, std::size_t start, std::size_t end, std::size_t param)
    : meta_(std::move(meta)), mode_(mode), start_(start), end_(end) {
  const std::size_t length = end_ - start_;
  if (mode_ == Mode::fixed) {
    step_ = param;
    count_ = length / step_ + (length % step_ != 0 ? 1 : 0);
  } else {
    count_ = std::min(param, length);
    step_ = count_ == 0 ? 0 : length / count_;
    extra_ = count_ == 0 ? 0 : length % count_;
  }
}

DataIterator DataIterator::chunks(ArrayMeta meta, std::size_t chunk_size, std::size_t start_idx) {
  if (chunk_size == 0) throw InvalidArgument(fmt::format("DataIterator::chunks: chunk size 0 for array {}", meta.shm_name));
  const std::size_t size = meta.size();
  if (start_idx > size) {
    throw InvalidArgument(fmt::format("DataIterator::chunks: start_idx {} is beyond the end of array {} ({} elements)",
                                      start_idx, meta.shm_name, size));
  }
  return {std::move(meta), Mode::fixed, start_idx, size, chunk_size};
}

DataIterator DataIterator::partitions(ArrayMeta meta, std::size_t partitions) {
  if (partitions == 0) throw InvalidArgument(fmt::format("DataIterator::partitions: 0 partitions for array {}", meta.shm_name));
  const std::size_t size = meta.size();
  return {std::move(meta), Mode::balanced, 0, size, partitions};
}

DataIterator DataIterator::rows(ArrayMeta meta, std::size_t rows_per_chunk) {
  if (rows_per_chunk == 0) throw InvalidArgument(fmt::format("DataIterator::rows: 0 rows per chunk for array {}", meta.shm_name));
  std::size_t chunk = 0;
  if (__builtin_mul_overflow(rows_per_chunk, meta.row_size(), &chunk)) {
    throw InvalidArgument(fmt::format("DataIterator::rows: {} rows per chunk overflows for array {}", rows_per_chunk, meta.shm_name));
  }
  if (chunk == 0) {  // rows of zero elements: nothing to process
    const std::size_t size = meta.size();
    return {std::move(meta), Mode::fixed, size, size, 1};
  }
  const std::size_t size = meta.size();
  return {std::move(meta), Mode::fixed, 0, size, chunk};
}

Range DataIterator::operator[](std::size_t i) const noexcept {
  if (mode_ == Mode::fixed) {
    const std::size_t s = start_ + i * step_;
    return {s, s + std::min(step_, end_ - s)};  // not min(s + step_, end_): s + step_ may wrap around
  }
  const std::size_t s = start_ + i * step_ + std::min(i, extra_);
  return {s, s + step_ + (i < extra_ ? 1 : 0)};
}

}  // namespace mpaio
