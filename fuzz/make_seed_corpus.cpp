// Writes the decoder fuzzer's seed records (selector byte + a valid encoding) into a directory:
//   make_seed_corpus <dir>
// The output is kept in fuzz/corpus/fuzz_result_decoder/; rerun this when the result types change.

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "fuzz_types.hpp"

namespace {

template <class T>
void write_seed(const std::string& dir, const std::string& name, mpaio::fuzz::Target target, const T& value) {
  std::vector<std::byte> bytes{static_cast<std::byte>(target)};
  mpaio::Codec<T>::encode(value, bytes);
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  using mpaio::fuzz::Target;
  write_seed(dir, "int64-zero", Target::int64, std::int64_t{0});
  write_seed(dir, "int64-min", Target::int64, std::numeric_limits<std::int64_t>::min());
  write_seed(dir, "stats", Target::stats, mpaio::fuzz::Stats{42, 2.5, 0x11, {'s', 'u', 'm', '\0'}});
  write_seed(dir, "string-empty", Target::string, std::string{});
  write_seed(dir, "string-foo", Target::string, std::string{"foo_0foo_1foo_2"});
  write_seed(dir, "doubles", Target::doubles, std::vector<double>{1.0, -0.5, 1e300});
  write_seed(dir, "report-empty", Target::report, mpaio::fuzz::Report{});
  write_seed(dir, "report-full", Target::report,
             mpaio::fuzz::Report{"partial sums",
                                 {0.25, 3.0},
                                 {7, true, "ok"},
                                 {{1, false, "a"}, {-2, true, "\xc3\xa9t\xc3\xa9"}},
                                 99});
  return 0;
}
