// Must not compile: the worker's Result is a std::map, which cereal serialises only with its header
// <cereal/types/map.hpp>; without it the type "cannot travel between processes", and the message says which
// header a standard container needs (Issue 11 item 18). Compiled with MPAIO_COMPILE_FAIL_CONTROL, the header
// is included and the file compiles: that proves the failure comes from this one difference.
#include <cstdint>
#include <map>
#include <string>

#ifdef MPAIO_COMPILE_FAIL_CONTROL
#include <cereal/types/map.hpp>
#endif
#include <mpaio/data_iterator.hpp>
#include <mpaio/shared_array.hpp>
#include <mpaio/worker.hpp>

using Histogram = std::map<std::int64_t, std::int64_t>;

struct HistogramWorker : mpaio::Worker<HistogramWorker, Histogram> {
  using Worker::Worker;
  static Histogram process(mpaio::ArrayView<const std::int64_t> data, mpaio::Range chunk) {
    Histogram counts;
    for (std::int64_t v : data.slice(chunk)) ++counts[v % 10];
    return counts;
  }
  void process_callback(Histogram partial) {
    for (const auto& [bin, count] : partial) total[bin] += count;
  }
  Histogram total;
};

int main() {
  auto ints = mpaio::SharedArray<std::int64_t>::create({16});
  HistogramWorker worker{mpaio::DataIterator::partitions(ints.meta(), 2)};
  return static_cast<int>(worker.total.size());
}
