// Must not compile: Worker::process takes a mutable ArrayView<float>, but the shared array is read-only in
// workers, so mpaio rejects it with the message about process's parameters, and with nothing after it: no
// claim that process "must return Result" or reads "an element type without a dtype", both untrue here
// (Issue 11 item 18). Compiled with MPAIO_COMPILE_FAIL_CONTROL, process takes ArrayView<const float> and the
// file compiles: that proves the failure comes from this one difference.
#include <mpaio/data_iterator.hpp>
#include <mpaio/shared_array.hpp>
#include <mpaio/worker.hpp>

#ifdef MPAIO_COMPILE_FAIL_CONTROL
using Floats = mpaio::ArrayView<const float>;
#else
using Floats = mpaio::ArrayView<float>;
#endif

struct MutableViewWorker : mpaio::Worker<MutableViewWorker, double> {
  using Worker::Worker;
  static double process(Floats data, mpaio::Range chunk) {
    double sum = 0;
    for (float v : data.slice(chunk)) sum += v;
    return sum;
  }
  void process_callback(double partial) { total += partial; }
  double total = 0;
};

int main() {
  auto floats = mpaio::SharedArray<float>::create({16});
  MutableViewWorker worker{mpaio::DataIterator::partitions(floats.meta(), 2)};
  return static_cast<int>(worker.total);
}
