// libFuzzer target: arbitrary bytes into mpaio::Codec<T>::decode for several result types.
//
// Input: one selector byte (which type, modulo kTargets), then the record. A DecodeError is the expected
// answer to a malformed record; any other exception, a crash or a sanitizer report is a bug. A record that
// decodes must encode back to the very same bytes (all these formats are canonical), so a decoder that
// accepts a record it misreads is caught too.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_types.hpp"
#include "mpaio/codec.hpp"
#include "mpaio/error.hpp"

namespace {

// Reads every field the way a process_callback would, so that a decoded value holding bytes its type
// does not allow (a bool other than 0 or 1) is reported by UBSan.
volatile std::uint64_t sink;
void touch(const mpaio::fuzz::Label& label) { sink = sink + static_cast<std::uint64_t>(label.code) + label.ok + label.text.size(); }
template <class T>
void touch(const T& value) {
  if constexpr (std::is_same_v<T, mpaio::fuzz::Report>) {
    sink = sink + value.name.size() + value.values.size() + value.id;
    touch(value.label);
    for (const auto& child : value.children) touch(child);
  } else {
    (void)value;
  }
}

template <class T>
void round_trip(std::span<const std::byte> record) {
  static_assert(mpaio::Encodable<T>);
  T value;
  try {
    value = mpaio::Codec<T>::decode(record);
  } catch (const mpaio::DecodeError&) {
    return;
  }
  touch(value);
  std::vector<std::byte> again;
  mpaio::Codec<T>::encode(value, again);
  if (again.size() != record.size() ||
      (!again.empty() && std::memcmp(again.data(), record.data(), again.size()) != 0)) {
    std::abort();  // decoded, but not to what the record says
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::byte> record(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  using mpaio::fuzz::Target;
  switch (static_cast<Target>(data[0] % mpaio::fuzz::kTargets)) {
    case Target::int64: round_trip<std::int64_t>(record); break;
    case Target::stats: round_trip<mpaio::fuzz::Stats>(record); break;
    case Target::string: round_trip<std::string>(record); break;
    case Target::doubles: round_trip<std::vector<double>>(record); break;
    case Target::report: round_trip<mpaio::fuzz::Report>(record); break;
  }
  return 0;
}
