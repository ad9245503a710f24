// libFuzzer target: arbitrary text into mpaio::ArrayMeta::from_json.
//
// A DecodeError is the expected answer to bad JSON. A document that parses must give a meta whose sizes
// can be computed, whose to_json() parses back to an equal meta (and to the same text), and whose
// check_fits() answers every segment size with success or InvalidArgument; anything else (another
// exception, a crash, a sanitizer report) is a bug.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

#include "mpaio/array_meta.hpp"
#include "mpaio/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  mpaio::ArrayMeta meta;
  try {
    meta = mpaio::ArrayMeta::from_json(text);
  } catch (const mpaio::DecodeError&) {
    return 0;
  }

  const std::string json = meta.to_json();
  const mpaio::ArrayMeta again = mpaio::ArrayMeta::from_json(json);  // must not throw
  if (!(again == meta) || again.to_json() != json) std::abort();

  // A parsed meta's sizes are computable: from_json rejects the ones that overflow.
  const std::size_t elements = meta.size();
  const std::size_t bytes = meta.nbytes();
  const std::size_t row = meta.row_size();
  if (!meta.shape.empty() && meta.shape[0] != 0 && row != elements / meta.shape[0]) std::abort();

  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
  for (std::size_t segment : {std::size_t{0}, std::size_t{1}, std::size_t{4096}, meta.offset, bytes,
                              meta.offset + bytes, meta.offset + bytes - 1, kMax}) {
    try {
      meta.check_fits(segment);
    } catch (const mpaio::InvalidArgument&) {
    }
  }
  return 0;
}
