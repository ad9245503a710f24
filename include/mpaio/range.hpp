#pragma once
/// @file range.hpp
/// Range: a half-open chunk [start, end) of an array's elements.

#include <cstddef>
#include <ostream>

namespace mpaio {

/// Half-open range [start, end) of flat element indices (for an N-d array, row-major order).
struct Range {
  std::size_t start = 0;
  std::size_t end = 0;

  [[nodiscard]] constexpr std::size_t size() const noexcept { return end - start; }
  [[nodiscard]] constexpr bool empty() const noexcept { return end == start; }
  friend constexpr bool operator==(const Range&, const Range&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Range& r) { return os << '[' << r.start << ", " << r.end << ')'; }
};

}  // namespace mpaio
