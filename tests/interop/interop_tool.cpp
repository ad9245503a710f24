// The C++ side of the numpy interop tests.
//
//   interop_tool create [N]   creates two named arrays: int64 1..N (default 1000) and <U6 "foo_0".."foo_99",
//                             prints their metadata JSON, one line each, then keeps them alive until stdin
//                             says "exit" (or closes); the arrays are unlinked on the way out.
//   interop_tool check JSON…  attaches each array described by JSON (read-only) and checks every element
//                             against the pattern for its dtype (see `check_one`).
//
// Exit codes: 0 all good, 1 an element differs, 2 an error (bad JSON, attach refused...), 64 usage.
#include <complex>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <mpaio/mpaio.hpp>

namespace {

template <class T>
std::string show(const T& v) {
  if constexpr (requires { v.str(); }) {
    return fmt::format("\"{}\"", v.str());
  } else if constexpr (std::is_same_v<T, std::complex<double>>) {
    return fmt::format("({}, {})", v.real(), v.imag());
  } else {
    return std::to_string(v);
  }
}

/// Attaches `meta` as an array of T and compares element i (flat, row-major) with expected(i).
template <class T, class Expected>
bool check_elements(const mpaio::ArrayMeta& meta, Expected expected) {
  const auto array = mpaio::SharedArray<T>::attach(meta);
  for (std::size_t i = 0; i < array.size(); ++i) {
    const T want = expected(i);
    if (!(array[i] == want)) {
      std::cout << "mismatch in " << meta.shm_name << " at element " << i << ": got " << show(array[i])
                << ", expected " << show(want) << '\n';
      return false;
    }
  }
  std::cout << "ok " << meta.shm_name << ' ' << meta.dtype.typestr() << ' ' << array.size() << " elements\n";
  return true;
}

/// The pattern each dtype is expected to hold, by flat index i (the Python side fills the same).
bool check_one(const mpaio::ArrayMeta& meta) {
  const std::string t = meta.dtype.typestr();
  const auto n = [](std::size_t i) { return static_cast<std::int64_t>(i); };
  if (t == "<i8") return check_elements<std::int64_t>(meta, [&](std::size_t i) { return n(i) + 1; });
  if (t == "<i4") return check_elements<std::int32_t>(meta, [&](std::size_t i) { return static_cast<std::int32_t>(n(i) - 50); });
  if (t == "<u2") return check_elements<std::uint16_t>(meta, [](std::size_t i) { return static_cast<std::uint16_t>(i * 7); });
  if (t == "<f8") return check_elements<double>(meta, [](std::size_t i) { return static_cast<double>(i) * 0.5; });
  if (t == "<f4") return check_elements<float>(meta, [](std::size_t i) { return static_cast<float>(i) / 4; });
  if (t == "|b1") return check_elements<bool>(meta, [](std::size_t i) { return i % 3 == 0; });
  if (t == "<c16") {
    return check_elements<std::complex<double>>(meta, [](std::size_t i) {
      return std::complex<double>(static_cast<double>(i), -static_cast<double>(i));
    });
  }
  if (t == "<U6") {
    return check_elements<mpaio::FixedUnicode<6>>(meta, [](std::size_t i) { return mpaio::FixedUnicode<6>("foo_" + std::to_string(i)); });
  }
  if (t == "|S8") {
    return check_elements<mpaio::FixedBytes<8>>(meta, [](std::size_t i) { return mpaio::FixedBytes<8>("bar_" + std::to_string(i)); });
  }
  throw mpaio::InvalidArgument("interop_tool: no expected pattern for dtype " + t);
}

int create(std::size_t n) {
  std::vector<std::int64_t> ints(n);
  for (std::size_t i = 0; i < n; ++i) ints[i] = static_cast<std::int64_t>(i) + 1;
  std::vector<mpaio::FixedUnicode<6>> names;
  for (int i = 0; i < 100; ++i) names.emplace_back("foo_" + std::to_string(i));
  const mpaio::SegmentOptions named{.kind = mpaio::SegmentKind::named};
  const auto int_array = mpaio::SharedArray<std::int64_t>::from(ints, named);
  const auto name_array = mpaio::SharedArray<mpaio::FixedUnicode<6>>::from(names, named);
  std::cout << int_array.meta().to_json() << '\n' << name_array.meta().to_json() << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
    if (line == "exit") break;
  }
  return 0;  // the arrays unlink their segments here
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (!args.empty() && args[0] == "create" && args.size() <= 2) {
      return create(args.size() == 2 ? std::stoul(args[1]) : 1000);
    }
    if (args.size() >= 2 && args[0] == "check") {
      bool all_ok = true;
      for (std::size_t k = 1; k < args.size(); ++k) all_ok = check_one(mpaio::ArrayMeta::from_json(args[k])) && all_ok;
      return all_ok ? 0 : 1;
    }
  } catch (const std::exception& e) {
    std::cout << "error: " << e.what() << std::endl;
    return 2;
  }
  std::cerr << "usage: interop_tool create [N] | interop_tool check JSON...\n";
  return 64;
}
