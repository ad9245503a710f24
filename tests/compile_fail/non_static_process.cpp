// Must not compile: Worker::process is a non-static member function. A worker process reaches `process`
// through a plain function pointer, with no worker object, so mpaio rejects this at compile time with
// "must be a static member function". Compiled with MPAIO_COMPILE_FAIL_CONTROL, `process` is static and
// the file compiles: that proves the failure comes from this one difference.
#include <cstdint>

#include <mpaio/mpaio.hpp>

struct NonStaticWorker : mpaio::Worker<NonStaticWorker, std::int64_t> {
  using Worker::Worker;
#ifdef MPAIO_COMPILE_FAIL_CONTROL
  static
#endif
  std::int64_t process(mpaio::ArrayView<const std::int64_t> data, mpaio::Range chunk) {
    std::int64_t sum = 0;
    for (std::int64_t v : data.slice(chunk)) sum += v;
    return sum;
  }
  void process_callback(std::int64_t partial) { total += partial; }
  std::int64_t total = 0;
};

int main() {
  auto ints = mpaio::SharedArray<std::int64_t>::create({16});
  NonStaticWorker worker{mpaio::DataIterator::partitions(ints.meta(), 2)};
  return static_cast<int>(worker.total);
}
