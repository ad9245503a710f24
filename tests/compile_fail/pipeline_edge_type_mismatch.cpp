// Must not compile: the classifier takes the detector's boxes (std::vector<int>) but is given the frame's
// port (double) where it expects them, so the edge's types differ: "an input port carries a different type
// than the stage's process takes there". Compiled with MPAIO_COMPILE_FAIL_CONTROL, the right port is given
// and the file compiles: that proves the failure comes from this one difference.
#include <cstdint>
#include <vector>

#include <mpaio/mpaio.hpp>

struct Detector : mpaio::Stage<Detector> {
  std::vector<int> process(double frame) { return {static_cast<int>(frame)}; }
};

struct Classifier : mpaio::Stage<Classifier> {
  std::int64_t process(double frame, const std::vector<int>& boxes, const mpaio::ItemContext&) {
    return static_cast<std::int64_t>(frame) + static_cast<std::int64_t>(boxes.size());
  }
};

int main() {
  mpaio::PipelineBuilder<double> graph;
  auto frame = graph.input();
  auto boxes = graph.add<Detector>({}, frame);
#ifdef MPAIO_COMPILE_FAIL_CONTROL
  auto out = graph.add<Classifier>({}, frame, boxes);
#else
  auto out = graph.add<Classifier>({}, frame, frame);
#endif
  (void)out;
  return 0;
}
