#include "mpaio/codec.hpp"

#include <fmt/format.h>

namespace mpaio::detail {

void throw_size_mismatch(const char* what, std::size_t expected, std::size_t got) {
  throw DecodeError(fmt::format("malformed {}: expected {} bytes, got {}", what, expected, got));
}

}  // namespace mpaio::detail
