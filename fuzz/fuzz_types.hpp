#pragma once
// Result types the decoder fuzzer feeds records to, shared with the seed-corpus generator.

#include <cstdint>
#include <string>
#include <vector>

#include "mpaio/codec.hpp"

namespace mpaio::fuzz {

/// A trivially copyable result without padding (so its bytes round-trip exactly).
struct Stats {
  std::int64_t count;
  double mean;
  std::uint32_t flags;
  char tag[4];
};
static_assert(sizeof(Stats) == 24 && std::is_trivially_copyable_v<Stats>);

/// Nested in Report: a cereal struct with a bool (whose only valid bytes are 0 and 1) and a string.
struct Label {
  std::int32_t code = 0;
  bool ok = false;
  std::string text;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(code, ok, text);
  }
  friend bool operator==(const Label&, const Label&) = default;
};

/// A cereal-serialised result: string, vector of doubles, a nested struct and a vector of them.
struct Report {
  std::string name;
  std::vector<double> values;
  Label label;
  std::vector<Label> children;
  std::uint64_t id = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, values, label, children, id);
  }
};

/// The types the fuzzer decodes; the first input byte picks one (modulo the count).
enum class Target : std::uint8_t { int64 = 0, stats = 1, string = 2, doubles = 3, report = 4 };
inline constexpr std::uint8_t kTargets = 5;

}  // namespace mpaio::fuzz
