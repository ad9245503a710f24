#include "mpaio/dtype.hpp"

#include <charconv>

#include <fmt/format.h>

namespace mpaio {

namespace detail {

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    int extra = 0;
    char32_t cp = 0;
    if (lead < 0x80) {
      cp = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      extra = 1, cp = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      extra = 2, cp = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      extra = 3, cp = lead & 0x07;
    } else {
      throw InvalidArgument(fmt::format("malformed UTF-8: byte 0x{:02x} at offset {}", lead, i));
    }
    if (static_cast<std::size_t>(extra) >= text.size() - i) {
      throw InvalidArgument(fmt::format("malformed UTF-8: sequence at offset {} is cut short", i));
    }
    for (int k = 1; k <= extra; ++k) {
      const auto cont = static_cast<unsigned char>(text[i + k]);
      if ((cont & 0xC0) != 0x80) {
        throw InvalidArgument(fmt::format("malformed UTF-8: byte 0x{:02x} at offset {}", cont, i + k));
      }
      cp = (cp << 6) | (cont & 0x3F);
    }
    // Strict UTF-8 (RFC 3629, as Python decodes it): no overlong forms, no surrogates, nothing past U+10FFFF.
    static constexpr char32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[extra] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      throw InvalidArgument(fmt::format("malformed UTF-8: invalid code point U+{:04X} at offset {}",
                                        static_cast<std::uint32_t>(cp), i));
    }
    out += cp;
    i += static_cast<std::size_t>(extra) + 1;
  }
  return out;
}

}  // namespace detail

DType DType::parse(std::string_view typestr) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument(fmt::format("unsupported dtype typestr \"{}\": {}", typestr, why));
  };
  if (typestr.size() < 3) throw bad("expected <byte order><kind><size>, e.g. \"<i8\"");
  const char order = typestr[0];
  if (order == '>') throw bad("big-endian data is not supported");
  if (order != '<' && order != '|' && order != '=') throw bad("byte order must be '<', '|' or '='");
  std::size_t count = 0;
  const auto digits = typestr.substr(2);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
  if (ec != std::errc{} || end != digits.data() + digits.size() || count == 0) throw bad("size must be a positive number");
  const char kind = typestr[1];
  switch (kind) {
    case 'b':
      if (count != 1) throw bad("bool is one byte");
      return {DTypeKind::boolean, 1};
    case 'i':
    case 'u':
      if (count != 1 && count != 2 && count != 4 && count != 8) throw bad("integers are 1, 2, 4 or 8 bytes");
      return {kind == 'i' ? DTypeKind::signed_int : DTypeKind::unsigned_int, count};
    case 'f':
      if (count != 4 && count != 8) throw bad("floats are 4 or 8 bytes");
      return {DTypeKind::floating, count};
    case 'c':
      if (count != 8 && count != 16) throw bad("complex numbers are 8 or 16 bytes");
      return {DTypeKind::complex, count};
    case 'S':
      return {DTypeKind::bytes, count};
    case 'U':
      if (count > (std::size_t{1} << 40)) throw bad("string width too large");
      return {DTypeKind::unicode, 4 * count};
    default:
      throw bad("unknown kind letter");
  }
}

std::string DType::typestr() const {
  const std::size_t n = kind == DTypeKind::unicode ? itemsize / 4 : itemsize;
  const char order = (itemsize == 1 || kind == DTypeKind::bytes || kind == DTypeKind::boolean) ? '|' : '<';
  return fmt::format("{}{}{}", order, static_cast<char>(kind), n);
}

}  // namespace mpaio
