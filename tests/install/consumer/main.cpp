// Uses an installed mpaio: creates a shared array, partitions it, sums the partitions, round-trips the
// metadata through JSON and attaches a second view of the array from it.
#include <cstdint>
#include <iostream>
#include <numeric>

#include <mpaio/mpaio.hpp>

int main() {
  auto ints = mpaio::SharedArray<std::int64_t>::create({1000});
  std::iota(ints.begin(), ints.end(), 1);
  const auto parts = mpaio::DataIterator::partitions(ints.meta(), 4);
  std::int64_t sum = 0;
  for (mpaio::Range r : parts) {
    for (std::int64_t v : ints.view().slice(r)) sum += v;
  }
  const auto again = mpaio::SharedArray<std::int64_t>::attach(mpaio::ArrayMeta::from_json(ints.meta().to_json()));
  std::cout << "consumer: " << parts.size() << " partitions of " << ints.meta().to_json() << ", sum " << sum
            << ", last element seen again " << again[999] << '\n';
  return parts.size() == 4 && sum == 500500 && again[999] == 1000 ? 0 : 1;
}
