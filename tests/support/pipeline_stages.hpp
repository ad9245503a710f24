#pragma once
// Stages for the pipeline tests: the camera diamond (detector -> size estimator and classifier -> aggregator)
// over frames in a SharedMemoryPool, with faults chosen per item through a shared page that every stage
// process inherits (the test fills it before building the pipeline).

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

#include "mpaio/mpaio.hpp"

namespace mpaio_test {

/// What a stage does with an item, beside its work.
enum class Fault : std::int64_t {
  none = 0,
  throw_first = 1,   ///< throws on the item's first attempt
  throw_always = 2,  ///< throws on every attempt
  kill_first = 3,    ///< SIGKILLs its own process on the first attempt
  hang_first = 4,    ///< sleeps for ever on the first attempt (a timeout stops it)
  hang_always = 5,   ///< sleeps for ever on every attempt
};

/// A shared page the stage processes inherit: counters, and one fault per (stage, item id modulo kItems).
struct StageBoard {
  static constexpr std::size_t kItems = 4096;
  std::atomic<std::int64_t> constructed[4];  // per stage kind
  std::atomic<std::int64_t> destroyed[4];
  std::atomic<std::int64_t> sleep_us[4];     // work per item
  std::atomic<std::int64_t> fail_construction[4];  // constructions that throw before one succeeds
  std::atomic<std::int64_t> faults[4][kItems];

  static StageBoard& get() {
    static StageBoard* board = [] {
      void* p = ::mmap(nullptr, sizeof(StageBoard), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::runtime_error("mmap");
      return new (p) StageBoard{};
    }();
    return *board;
  }
  void reset() {
    for (int s = 0; s < 4; ++s) {
      constructed[s] = destroyed[s] = sleep_us[s] = fail_construction[s] = 0;
      for (auto& f : faults[s]) f = 0;
    }
  }
};

enum StageKind { kDetector = 0, kSizer = 1, kClassifier = 2, kAggregator = 3 };

using Frame = mpaio::PoolArray<std::uint8_t>;

/// Runs the board's work and fault for `kind` on `item`.
inline void act(StageKind kind, const mpaio::ItemContext& item) {
  StageBoard& b = StageBoard::get();
  if (const auto us = b.sleep_us[kind].load(); us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
  const auto fault = static_cast<Fault>(b.faults[kind][item.item % StageBoard::kItems].load());
  const bool first = item.attempt == 0;
  switch (fault) {
    case Fault::throw_first:
      if (first) throw std::runtime_error("bad item " + std::to_string(item.item));
      break;
    case Fault::throw_always: throw std::runtime_error("bad item " + std::to_string(item.item));
    case Fault::kill_first:
      if (first) ::kill(::getpid(), SIGKILL);
      break;
    case Fault::hang_first:
    case Fault::hang_always:
      if (first || fault == Fault::hang_always) {
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
      }
      break;
    case Fault::none: break;
  }
}

template <StageKind Kind>
struct Counted {
  Counted() {
    StageBoard& b = StageBoard::get();
    if (b.fail_construction[Kind].fetch_sub(1) > 0) throw std::runtime_error("no model in this process");
    ++b.constructed[Kind];
  }
  ~Counted() { ++StageBoard::get().destroyed[Kind]; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
};

/// The sum of a frame's bytes.
struct Detector : mpaio::Stage<Detector>, Counted<kDetector> {
  std::int64_t process(const Frame& frame, const mpaio::ItemContext& item) {
    act(kDetector, item);
    std::int64_t sum = 0;
    for (std::uint8_t v : frame) sum += v;
    return sum;
  }
};

struct SizeEstimator : mpaio::Stage<SizeEstimator>, Counted<kSizer> {
  std::int64_t process(const Frame& frame, std::int64_t sum, const mpaio::ItemContext& item) {
    act(kSizer, item);
    return sum + static_cast<std::int64_t>(frame.size());
  }
};

struct Classifier : mpaio::Stage<Classifier>, Counted<kClassifier> {
  struct Config {
    std::int64_t factor = 2;
  };
  explicit Classifier(const Config& config) : factor(config.factor) {}
  std::int64_t process(const Frame& frame, std::int64_t sum, const mpaio::ItemContext& item) {
    act(kClassifier, item);
    return sum * factor + (frame[0] == frame[frame.size() - 1] ? 0 : 1'000'000'000);
  }
  std::int64_t factor;
};

struct Summary {
  std::int64_t size = 0;
  std::int64_t kind = 0;
  pid_t pid = 0;
};

struct Aggregator : mpaio::Stage<Aggregator>, Counted<kAggregator> {
  Summary process(std::int64_t size, std::int64_t kind, const mpaio::ItemContext& item) {
    act(kAggregator, item);
    return {size, kind, ::getpid()};
  }
};

/// A frame of `bytes` bytes whose every byte is id % 251.
inline Frame make_frame(mpaio::SharedMemoryPool& pool, std::uint64_t id, std::size_t bytes) {
  Frame frame = pool.allocate<std::uint8_t>({bytes});
  std::fill(frame.begin(), frame.end(), static_cast<std::uint8_t>(id % 251));
  return frame;
}

/// The diamond's expected summary for item `id` (factor 2).
inline Summary expected_summary(std::uint64_t id, std::size_t bytes) {
  const std::int64_t sum = static_cast<std::int64_t>(id % 251) * static_cast<std::int64_t>(bytes);
  return {sum + static_cast<std::int64_t>(bytes), 2 * sum, 0};
}

/// The camera diamond over frames.
struct Diamond {
  mpaio::PipelineBuilder<Frame> graph;
  mpaio::Port<Summary> output;
  explicit Diamond(unsigned middle_replicas = 1, unsigned retries = 0, std::chrono::milliseconds timeout = {}) {
    auto frame = graph.input();
    auto sum = graph.add<Detector>({.name = "detector", .retries = retries, .timeout = timeout}, frame);
    auto size = graph.add<SizeEstimator>({.name = "size_estimator", .replicas = middle_replicas, .retries = retries, .timeout = timeout},
                                         frame, sum);
    auto kind = graph.add<Classifier>({.name = "classifier", .replicas = middle_replicas, .retries = retries, .timeout = timeout},
                                      Classifier::Config{2}, frame, sum);
    output = graph.add<Aggregator>({.name = "aggregator", .retries = retries, .timeout = timeout}, size, kind);
  }
};

}  // namespace mpaio_test
