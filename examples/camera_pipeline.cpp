// The camera-frame controller: every frame goes through detector -> (size_estimator ∥ classifier, both
// reading the frame and the detector's boxes) -> aggregator, each stage in processes of its own that load
// their "model" once. Frames live in a SharedMemoryPool: the two middle stages read the same frame, nobody
// copies it, and its block is freed once the aggregator is done with it. Stage costs are set by flags
// (CPU time measured on the thread's CPU clock, so preemption cannot shorten it, or sleep for a GPU or I/O
// stage). Prints frames/s, the speed-up over running the same stage objects one after the other in this
// process (--compare), and the per-stage table. Ctrl-C exits 130 leaving no process and no segment.
//
//   camera_pipeline --frames 200 --in-flight 4 --detector-ms 4 --middle-ms 8 --aggregator-ms 1 --compare
#include <signal.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <fmt/format.h>

#include "mpaio/mpaio.hpp"

namespace {

using Frame = mpaio::PoolArray<std::uint8_t>;

/// How long a stage works per frame, and how long its constructor takes.
struct Cost {
  double ms = 0;        ///< per frame
  double init_ms = 0;   ///< once per process (loading a model)
  bool sleep = false;   ///< sleep instead of burning CPU
};

double thread_cpu_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

/// Works for `ms` milliseconds of this thread's CPU time (or sleeps them).
void work(double ms, bool sleep) {
  if (ms <= 0) return;
  if (sleep) {
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
    return;
  }
  const double until = thread_cpu_ms() + ms;
  volatile std::uint64_t x = 0;
  while (thread_cpu_ms() < until) {
    for (int i = 0; i < 1000; ++i) x = x + static_cast<std::uint64_t>(i);
  }
}

struct Box {
  std::int32_t x, y, w, h;
};
using Boxes = std::vector<Box>;

struct FrameStats {
  std::uint64_t frame = 0;
  std::int32_t objects = 0;
  float mean_size = 0;
  std::int32_t people = 0;
};

/// The synthetic frame `id`: every byte is id % 251, so a stage can tell which frame it was given.
std::uint8_t tag_of(std::uint64_t id) { return static_cast<std::uint8_t>(id % 251); }
std::int32_t objects_in(std::uint8_t tag) { return 1 + tag % 4; }

struct Detector : mpaio::Stage<Detector> {
  using Config = Cost;
  explicit Detector(const Cost& cost) : cost(cost) { work(cost.init_ms, true); }
  Boxes process(const Frame& frame) {
    work(cost.ms, cost.sleep);
    const std::uint8_t tag = frame[frame.size() / 2];
    Boxes boxes;
    for (std::int32_t i = 0; i < objects_in(tag); ++i) boxes.push_back({i * 40, tag, 32 + i, 64 + tag % 7});
    return boxes;
  }
  Cost cost;
};

struct SizeEstimator : mpaio::Stage<SizeEstimator> {
  using Config = Cost;
  explicit SizeEstimator(const Cost& cost) : cost(cost) { work(cost.init_ms, true); }
  std::vector<float> process(const Frame& frame, const Boxes& boxes) {
    work(cost.ms, cost.sleep);
    std::vector<float> sizes;
    for (const Box& b : boxes) sizes.push_back(static_cast<float>(b.w * b.h) / static_cast<float>(frame.shape()[1]));
    return sizes;
  }
  Cost cost;
};

struct Classifier : mpaio::Stage<Classifier> {
  using Config = Cost;
  explicit Classifier(const Cost& cost) : cost(cost) { work(cost.init_ms, true); }
  std::vector<std::int32_t> process(const Frame& frame, const Boxes& boxes) {
    work(cost.ms, cost.sleep);
    std::vector<std::int32_t> labels;
    for (const Box& b : boxes) labels.push_back((b.x + frame[0]) % 3 == 0 ? 1 : 0);  // 1: a person
    return labels;
  }
  Cost cost;
};

struct Aggregator : mpaio::Stage<Aggregator> {
  using Config = Cost;
  explicit Aggregator(const Cost& cost) : cost(cost) { work(cost.init_ms, true); }
  FrameStats process(const std::vector<float>& sizes, const std::vector<std::int32_t>& labels,
                     const mpaio::ItemContext& item) {
    work(cost.ms, cost.sleep);
    FrameStats s;
    s.frame = item.item;
    s.objects = static_cast<std::int32_t>(sizes.size());
    for (float v : sizes) s.mean_size += v / static_cast<float>(sizes.size());
    for (std::int32_t l : labels) s.people += l;
    return s;
  }
  Cost cost;
};

struct Flags {
  std::size_t frames = 200;
  std::size_t in_flight = 4;
  unsigned replicas = 1;
  std::string order = "input";
  std::size_t height = 480, width = 640;
  double detector_ms = 0, middle_ms = 10, aggregator_ms = 0, init_ms = 0;
  bool sleep = false, progress = false, compare = false;
  std::string trace;
};

Frame make_frame(mpaio::SharedMemoryPool& pool, const Flags& f, std::uint64_t id) {
  Frame frame = pool.allocate<std::uint8_t>({f.height, f.width, 3});
  std::fill(frame.begin(), frame.end(), tag_of(id));
  return frame;
}

/// The same stage objects, one after the other in this process: the reference.
double sequential_frames_per_second(mpaio::SharedMemoryPool& pool, const Flags& f, std::size_t frames) {
  Detector detector({f.detector_ms, 0, f.sleep});
  SizeEstimator sizer({f.middle_ms, 0, f.sleep});
  Classifier classifier({f.middle_ms, 0, f.sleep});
  Aggregator aggregator({f.aggregator_ms, 0, f.sleep});
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t id = 0; id < frames; ++id) {
    Frame frame = make_frame(pool, f, id);
    const Boxes boxes = detector.process(frame);
    (void)aggregator.process(sizer.process(frame, boxes), classifier.process(frame, boxes), {id, 0, 0, {}});
  }
  return static_cast<double>(frames) / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Camera frames through detector -> (size_estimator, classifier) -> aggregator, a process per stage"};
  Flags f;
  app.add_option("--frames", f.frames, "frames to send")->check(CLI::PositiveNumber);
  app.add_option("--in-flight", f.in_flight, "frames in the pipeline at once")->check(CLI::PositiveNumber);
  app.add_option("--replicas", f.replicas, "processes of each middle stage")->check(CLI::Range(1u, 64u));
  app.add_option("--order", f.order, "result order")->check(CLI::IsMember({"input", "completion"}));
  app.add_option("--height", f.height, "frame height")->check(CLI::PositiveNumber);
  app.add_option("--width", f.width, "frame width")->check(CLI::PositiveNumber);
  app.add_option("--detector-ms", f.detector_ms, "detector work per frame (ms)")->check(CLI::NonNegativeNumber);
  app.add_option("--middle-ms", f.middle_ms, "size_estimator and classifier work per frame (ms)")->check(CLI::NonNegativeNumber);
  app.add_option("--aggregator-ms", f.aggregator_ms, "aggregator work per frame (ms)")->check(CLI::NonNegativeNumber);
  app.add_option("--init-ms", f.init_ms, "each stage's constructor takes this long (loading a model)")->check(CLI::NonNegativeNumber);
  app.add_flag("--sleep", f.sleep, "stages sleep (a GPU or I/O stage) instead of burning CPU");
  app.add_flag("--progress", f.progress, "a progress bar on stderr");
  app.add_flag("--compare", f.compare, "also run the stages one after the other in this process, and print the speed-up");
  app.add_option("--trace", f.trace, "write each frame's time in each stage as Chrome trace JSON to this file");
  CLI11_PARSE(app, argc, argv);

  try {
    auto pool = mpaio::SharedMemoryPool::create();  // before the pipeline: its stage processes inherit it
    std::optional<double> sequential;
    if (f.compare) sequential = sequential_frames_per_second(pool, f, std::min<std::size_t>(f.frames, 50));

    asio::io_context io;
    const Cost detector{f.detector_ms, f.init_ms, f.sleep}, middle{f.middle_ms, f.init_ms, f.sleep},
        aggregator{f.aggregator_ms, f.init_ms, f.sleep};
    mpaio::PipelineBuilder<Frame> graph;
    auto frame = graph.input();
    auto boxes = graph.add<Detector>({.name = "detector"}, detector, frame);
    auto sizes = graph.add<SizeEstimator>({.name = "size_estimator", .replicas = f.replicas}, middle, frame, boxes);
    auto labels = graph.add<Classifier>({.name = "classifier", .replicas = f.replicas}, middle, frame, boxes);
    auto stats = graph.add<Aggregator>({.name = "aggregator"}, aggregator, sizes, labels);
    auto pipeline = graph.build(stats, io.get_executor(),
                                {.max_in_flight = f.in_flight,
                                 .order = f.order == "input" ? mpaio::ResultOrder::input : mpaio::ResultOrder::completion,
                                 .trace = !f.trace.empty()});

    bool interrupted = false;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const std::error_code& ec, int) {
      if (ec) return;
      interrupted = true;
      pipeline.cancel();
    });
    mpaio::ProgressBar bar(f.frames, f.frames,
                           {.mode = f.progress ? mpaio::ProgressMode::always : mpaio::ProgressMode::off,
                            .unit = "frames",
                            .rate_unit = "frames"});
    std::size_t done = 0, wrong = 0, failed = 0;
    std::int64_t objects = 0, people = 0;
    const auto start = std::chrono::steady_clock::now();
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (std::uint64_t id = 0; id < f.frames && !interrupted; ++id) co_await pipeline.push(make_frame(pool, f, id));
      pipeline.close();
    }, [](std::exception_ptr) {});  // push throws once cancelled
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      while (auto result = co_await pipeline.pull()) {
        ++done;
        bar.update(done, done);
        if (!result->ok()) {
          ++failed;
          std::cerr << result->failure->describe() << "\n";
          continue;
        }
        objects += (*result)->objects;
        people += (*result)->people;
        wrong += (*result)->objects != objects_in(tag_of(result->item));
      }
      signals.cancel();
    }, asio::detached);
    io.run();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (interrupted) {
      std::cerr << "camera_pipeline: interrupted\n";
      return 130;
    }
    bar.finish();
    const double fps = static_cast<double>(done) / seconds;
    std::cout << fmt::format("{} frames of {}x{}x3 in {:.2f} s: {:.1f} frames/s ({} objects, {} people)\n", done, f.height,
                             f.width, seconds, fps, objects, people);
    if (sequential) {
      std::cout << fmt::format("sequential, same stages in one process: {:.1f} frames/s; pipeline speed-up {:.2f}x\n",
                               *sequential, fps / *sequential);
    }
    std::cout << mpaio::format_stage_table(pipeline.stats(), seconds);
    if (!f.trace.empty()) {
      std::ofstream out(f.trace);
      pipeline.write_trace_json(out);
    }
    if (wrong != 0 || failed != 0) {
      std::cerr << "camera_pipeline: " << wrong << " frames with a wrong result, " << failed << " failed\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "camera_pipeline: " << e.what() << "\n";
    return 1;
  }
}
