#pragma once
/// @file array_meta.hpp
/// ArrayMeta: the small, serialisable description of an array in shared memory.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mpaio/dtype.hpp"

namespace mpaio {

/// Where an array lives and how to read it: segment name, dtype, row-major shape and byte offset.
///
/// This is what crosses process boundaries instead of the data; as JSON it uses the keys a numpy user
/// would guess: {"shm_name": "...", "typestr": "<i8", "shape": [2, 3], "offset": 0}.
struct ArrayMeta {
  std::string shm_name;
  DType dtype;
  std::vector<std::size_t> shape;
  std::size_t offset = 0;  ///< bytes from the start of the segment to element 0

  /// Number of elements (product of the shape; 1 for a 0-d array). Throws InvalidArgument on overflow.
  [[nodiscard]] std::size_t size() const;
  /// Bytes the elements occupy. Throws InvalidArgument on overflow.
  [[nodiscard]] std::size_t nbytes() const;
  /// Elements per row of the first axis (product of shape[1:]); 1 for 1-d arrays.
  [[nodiscard]] std::size_t row_size() const;
  /// Checks that offset + nbytes fits a segment of `segment_size` bytes and that the offset is aligned
  /// for the element type; throws InvalidArgument naming the numbers otherwise.
  void check_fits(std::size_t segment_size) const;
  /// Throws InvalidArgument unless the array holds elements of type `expected`.
  void check_dtype(const DType& expected) const;

  /// The JSON form (keys shm_name, typestr, shape, offset).
  [[nodiscard]] std::string to_json() const;
  /// Parses the JSON form; throws DecodeError naming the key that is missing or of the wrong type.
  static ArrayMeta from_json(std::string_view json);

  friend bool operator==(const ArrayMeta&, const ArrayMeta&) = default;
};

}  // namespace mpaio
