#pragma once
/// @file dtype.hpp
/// DType: a numpy-compatible element type, written as an array-interface typestr (`<i8`, `|S8`, `<U6`...).

#include <complex>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "mpaio/fixed_string.hpp"

namespace mpaio {

/// The kind letter of a numpy typestr.
enum class DTypeKind : char {
  boolean = 'b',
  signed_int = 'i',
  unsigned_int = 'u',
  floating = 'f',
  complex = 'c',
  bytes = 'S',    ///< fixed-width bytes, itemsize = width
  unicode = 'U',  ///< fixed-width UTF-32, itemsize = 4 * width
};

/// An element type as numpy describes it: kind and size in bytes, little-endian (this library's only
/// byte order).
struct DType {
  DTypeKind kind = DTypeKind::unsigned_int;
  std::size_t itemsize = 1;  ///< bytes per element

  /// Parses a typestr (`<i8`, `|b1`, `=f4`, `|S8`, `<U6`...). Throws InvalidArgument naming the typestr
  /// for unknown kinds, impossible sizes and big-endian types.
  static DType parse(std::string_view typestr);
  /// The array-interface typestr: `|` for one-byte and bytes types, `<` otherwise.
  [[nodiscard]] std::string typestr() const;
  friend bool operator==(const DType&, const DType&) = default;
};

namespace detail {
template <class T>
struct DTypeOf;
template <> struct DTypeOf<bool> { static constexpr DType value{DTypeKind::boolean, 1}; };
template <> struct DTypeOf<std::int8_t> { static constexpr DType value{DTypeKind::signed_int, 1}; };
template <> struct DTypeOf<std::int16_t> { static constexpr DType value{DTypeKind::signed_int, 2}; };
template <> struct DTypeOf<std::int32_t> { static constexpr DType value{DTypeKind::signed_int, 4}; };
template <> struct DTypeOf<std::int64_t> { static constexpr DType value{DTypeKind::signed_int, 8}; };
template <> struct DTypeOf<std::uint8_t> { static constexpr DType value{DTypeKind::unsigned_int, 1}; };
template <> struct DTypeOf<std::uint16_t> { static constexpr DType value{DTypeKind::unsigned_int, 2}; };
template <> struct DTypeOf<std::uint32_t> { static constexpr DType value{DTypeKind::unsigned_int, 4}; };
template <> struct DTypeOf<std::uint64_t> { static constexpr DType value{DTypeKind::unsigned_int, 8}; };
template <> struct DTypeOf<float> { static constexpr DType value{DTypeKind::floating, 4}; };
template <> struct DTypeOf<double> { static constexpr DType value{DTypeKind::floating, 8}; };
template <> struct DTypeOf<std::complex<float>> { static constexpr DType value{DTypeKind::complex, 8}; };
template <> struct DTypeOf<std::complex<double>> { static constexpr DType value{DTypeKind::complex, 16}; };
template <std::size_t N> struct DTypeOf<FixedBytes<N>> { static constexpr DType value{DTypeKind::bytes, N}; };
template <std::size_t N> struct DTypeOf<FixedUnicode<N>> { static constexpr DType value{DTypeKind::unicode, 4 * N}; };
}  // namespace detail

/// Whether T is an element type mpaio can store in a shared array.
template <class T>
concept Element = requires { detail::DTypeOf<std::remove_cv_t<T>>::value; } && std::is_trivially_copyable_v<T>;

/// The DType of element type T (cv-qualifiers ignored).
template <Element T>
constexpr DType dtype_of() noexcept {
  return detail::DTypeOf<std::remove_cv_t<T>>::value;
}

}  // namespace mpaio
