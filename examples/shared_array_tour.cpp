// Creates a shared array, splits it three ways and prints the chunks and the metadata JSON that another
// process (or numpy) would use to attach it.
#include <cstdint>
#include <iostream>
#include <numeric>

#include <mpaio/mpaio.hpp>

int main() {
  auto ints = mpaio::SharedArray<std::int64_t>::create({10}, {.kind = mpaio::SegmentKind::named});
  std::iota(ints.begin(), ints.end(), 1);
  std::cout << "array: " << ints.meta().to_json() << '\n';
  std::cout << "chunks of 3 (MPAIO semantics):";
  for (mpaio::Range r : mpaio::DataIterator::chunks(ints.meta(), 3)) std::cout << ' ' << r;
  std::cout << "\n3 balanced partitions:      ";
  for (mpaio::Range r : mpaio::DataIterator::partitions(ints.meta(), 3)) std::cout << ' ' << r;
  std::cout << '\n';
  const auto view = ints.view();
  std::int64_t sum = 0;
  for (mpaio::Range r : mpaio::DataIterator::partitions(ints.meta(), 3)) {
    for (std::int64_t v : view.slice(r)) sum += v;
  }
  std::cout << "sum over the partitions: " << sum << '\n';
  return sum == 55 ? 0 : 1;
}
