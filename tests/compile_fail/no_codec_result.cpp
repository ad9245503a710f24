// Must not compile: the worker's Result has no codec (not trivially copyable, not a string or vector of
// trivially copyable, no cereal function, no Codec specialisation), so it "cannot travel between
// processes". Compiled with MPAIO_COMPILE_FAIL_CONTROL, the type gets a cereal serialize function and the
// file compiles: that proves the failure comes from this one difference.
#include <cstdint>
#include <string>
#include <vector>

#include <mpaio/mpaio.hpp>

struct Label {
  std::string text;
  std::vector<std::string> parts;
#ifdef MPAIO_COMPILE_FAIL_CONTROL
  template <class Archive>
  void serialize(Archive& ar) {
    ar(text, parts);
  }
#endif
};

struct LabelWorker : mpaio::Worker<LabelWorker, Label> {
  using Worker::Worker;
  static Label process(mpaio::ArrayView<const std::int64_t>, mpaio::Range chunk) {
    return {std::to_string(chunk.start), {}};
  }
  void process_callback(Label label) { last = std::move(label); }
  Label last;
};

int main() {
  auto ints = mpaio::SharedArray<std::int64_t>::create({16});
  LabelWorker worker{mpaio::DataIterator::partitions(ints.meta(), 2)};
  return static_cast<int>(worker.last.text.size());
}
