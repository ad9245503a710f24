#pragma once
/// @file fixed_string.hpp
/// Fixed-width string elements with numpy's layout: FixedBytes<N> is `|S<N>`, FixedUnicode<N> is `<U<N>`.

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "mpaio/error.hpp"

namespace mpaio {

namespace detail {
/// Appends the UTF-8 encoding of `cp` (a Unicode code point) to `out`.
void append_utf8(std::string& out, char32_t cp);
/// Decodes UTF-8 `text` to code points; throws InvalidArgument on malformed input.
std::u32string decode_utf8(std::string_view text);
}  // namespace detail

/// N bytes, NUL-padded (numpy `|S<N>`, Python `bytes`); the value ends at the first NUL.
template <std::size_t N>
struct FixedBytes {
  static_assert(N > 0, "FixedBytes needs at least one byte");
  std::array<char, N> chars{};

  FixedBytes() = default;
  /// Copies `text`; throws InvalidArgument if it is longer than N bytes.
  FixedBytes(std::string_view text) {  // NOLINT(google-explicit-constructor): reads like a string literal
    if (text.size() > N) {
      throw InvalidArgument("FixedBytes<" + std::to_string(N) + ">: \"" + std::string(text) + "\" is " +
                            std::to_string(text.size()) + " bytes long");
    }
    std::copy(text.begin(), text.end(), chars.begin());
  }
  /// The bytes up to the first NUL.
  [[nodiscard]] std::string_view view() const noexcept {
    return {chars.data(), static_cast<std::size_t>(std::find(chars.begin(), chars.end(), '\0') - chars.begin())};
  }
  [[nodiscard]] std::string str() const { return std::string(view()); }
  friend bool operator==(const FixedBytes& a, const FixedBytes& b) noexcept { return a.view() == b.view(); }
};

/// N UTF-32 code points, NUL-padded (numpy `<U<N>`, Python `str`); the value ends at the first NUL.
template <std::size_t N>
struct FixedUnicode {
  static_assert(N > 0, "FixedUnicode needs at least one character");
  std::array<char32_t, N> chars{};

  FixedUnicode() = default;
  /// Decodes UTF-8 `text`; throws InvalidArgument if it is malformed or longer than N characters.
  FixedUnicode(std::string_view text) {  // NOLINT(google-explicit-constructor)
    const std::u32string cps = detail::decode_utf8(text);
    if (cps.size() > N) {
      throw InvalidArgument("FixedUnicode<" + std::to_string(N) + ">: \"" + std::string(text) + "\" is " +
                            std::to_string(cps.size()) + " characters long");
    }
    std::copy(cps.begin(), cps.end(), chars.begin());
  }
  /// The code points up to the first NUL.
  [[nodiscard]] std::u32string_view view() const noexcept {
    return {chars.data(), static_cast<std::size_t>(std::find(chars.begin(), chars.end(), U'\0') - chars.begin())};
  }
  /// The value as UTF-8.
  [[nodiscard]] std::string str() const {
    std::string out;
    for (char32_t cp : view()) detail::append_utf8(out, cp);
    return out;
  }
  friend bool operator==(const FixedUnicode& a, const FixedUnicode& b) noexcept { return a.view() == b.view(); }
};

}  // namespace mpaio
