#pragma once
/// @file data_iterator.hpp
/// DataIterator: the chunks of an array, by chunk size (MPAIO's semantics), by partitions or by rows.

#include <compare>
#include <cstddef>
#include <iterator>

#include "mpaio/array_meta.hpp"
#include "mpaio/range.hpp"

namespace mpaio {

/// The sequence of Ranges that splits an array into chunks; random access, computed on demand.
///
/// - chunks(meta, n, start): [start, start+n), [start+n, start+2n), ..., the last one short.
/// - partitions(meta, p): p ranges whose sizes differ by at most one (one element each if p > size).
/// - rows(meta, r): chunks of r rows of the first axis (r * row_size elements).
/// An empty array gives zero chunks.
class DataIterator {
 public:
  /// Chunks of `chunk_size` elements from `start_idx`. Throws InvalidArgument for chunk size 0 or a
  /// start beyond the end.
  static DataIterator chunks(ArrayMeta meta, std::size_t chunk_size, std::size_t start_idx = 0);
  /// `partitions` balanced ranges. Throws InvalidArgument for 0 partitions.
  static DataIterator partitions(ArrayMeta meta, std::size_t partitions);
  /// Chunks of `rows_per_chunk` whole rows of an N-d array. Throws InvalidArgument for 0 rows.
  static DataIterator rows(ArrayMeta meta, std::size_t rows_per_chunk);

  /// The array being split.
  [[nodiscard]] const ArrayMeta& meta() const noexcept { return meta_; }
  /// Number of chunks.
  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
  /// Chunk i (unchecked: i < size()).
  [[nodiscard]] Range operator[](std::size_t i) const noexcept;

  class iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = Range;
    using difference_type = std::ptrdiff_t;
    using reference = Range;
    iterator() = default;
    iterator(const DataIterator* owner, std::size_t i) : owner_(owner), i_(i) {}
    Range operator*() const noexcept { return (*owner_)[i_]; }
    iterator& operator++() noexcept { return ++i_, *this; }
    iterator operator++(int) noexcept { auto old = *this; ++i_; return old; }
    difference_type operator-(const iterator& o) const noexcept {
      return static_cast<difference_type>(i_) - static_cast<difference_type>(o.i_);
    }
    bool operator==(const iterator& o) const noexcept { return i_ == o.i_; }
    // The rest of a random-access iterator, so that std::next, std::ranges algorithms and the
    // std::random_access_iterator concept accept it as the tag above promises.
    iterator& operator--() noexcept { return --i_, *this; }
    iterator operator--(int) noexcept { auto old = *this; --i_; return old; }
    iterator& operator+=(difference_type n) noexcept { return i_ += static_cast<std::size_t>(n), *this; }
    iterator& operator-=(difference_type n) noexcept { return i_ -= static_cast<std::size_t>(n), *this; }
    friend iterator operator+(iterator it, difference_type n) noexcept { return it += n; }
    friend iterator operator+(difference_type n, iterator it) noexcept { return it += n; }
    friend iterator operator-(iterator it, difference_type n) noexcept { return it -= n; }
    Range operator[](difference_type n) const noexcept { return *(*this + n); }
    std::strong_ordering operator<=>(const iterator& o) const noexcept { return i_ <=> o.i_; }

   private:
    const DataIterator* owner_ = nullptr;
    std::size_t i_ = 0;
  };
  [[nodiscard]] iterator begin() const noexcept { return {this, 0}; }
  [[nodiscard]] iterator end() const noexcept { return {this, count_}; }

 private:
  enum class Mode { fixed, balanced };
  DataIterator(ArrayMeta meta, Mode mode, std::size_t start, std::size_t end, std::size_t param);

  ArrayMeta meta_;
  Mode mode_ = Mode::fixed;
  std::size_t start_ = 0;
  std::size_t end_ = 0;
  std::size_t step_ = 1;    // fixed: chunk size; balanced: base partition size
  std::size_t extra_ = 0;   // balanced: how many leading partitions get one more element
  std::size_t count_ = 0;
};

}  // namespace mpaio
