// Pipelines: the camera diamond (detector -> size_estimator ∥ classifier -> aggregator) run by three
// engines over the SAME stage functions, in items per second:
//   sequential         the four stage functions one after the other, one process, item after item (the
//                      reference for speed-ups);
//   onetbb_flow_graph  oneTBB flow graph on threads: a serial function_node per stage (the two middle ones
//                      run in parallel), a key_matching join_node keyed by item id, a limiter_node that
//                      keeps at most max_in_flight items in the graph;
//   mpaio_pipeline     mpaio::Pipeline, each stage in a process of its own (1 replica each); frames are
//                      PoolArray<uint8_t> of a SharedMemoryPool created before the pipeline.
// Stage costs are CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), so preemption cannot shorten
// them. Scenarios (the benchmark argument "scenario", named in each row's label):
//   0 seed_controller          detector 0, size_estimator = classifier = 10 ms, aggregator 0; one frame in
//                              flight; 480x640x3 frames
//   1 pipelined_diamond        detector 4 ms, middle 8 ms each, aggregator 1 ms; 4 in flight; 480x640x3
//   2 pipelined_diamond_1080p  the same over 1080x1920x3 frames (the Python reference's frames)
//   3 empty_stages             8-byte items (std::int64_t), every cost 0; 64 in flight
//   4 latency                  8-byte items, every cost 0, one item in flight: per-item push -> result
//                              time, counters p50_us / p99_us (and items/s)
//   5 churn_clean              mpaio only: 64x64x3 frames, detector 0.2 ms, middle 0.4 ms, aggregator 0.1 ms,
//                              8 in flight, stages retry twice
//   6 churn_killed             the same while a random stage process is SIGKILLed every 100 ms (counters
//                              kills, failed_items): crash injection costs this against churn_clean
// Each benchmark runs one fixed batch (Iterations(1)); the pipeline (its processes) or the flow graph's
// threads are started and warmed up once per benchmark run, outside the timed loop. Run
//   build/bench/bench/bench_pipeline [--benchmark_repetitions=5 --benchmark_report_aggregates_only=true]
// bench/compare.py --only pipeline prints the ratios against the targets (and the Python reference).
#include <signal.h>
#include <time.h>

#include <benchmark/benchmark.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/info.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <mpaio/mpaio.hpp>

namespace {

// ---- scenarios ---------------------------------------------------------------------------------------------

struct Scenario {
  const char* name;
  std::int64_t detector_us;
  std::int64_t middle_us;  // size_estimator and classifier each
  std::int64_t aggregator_us;
  std::size_t max_in_flight;
  std::size_t rows, cols;  // frames of rows x cols x 3 bytes; 0: 8-byte items (std::int64_t)
  std::size_t items;       // the measured batch
  std::size_t warmup;      // items run before it
  bool latency;            // one item at a time, push -> result timed per item
  int kill_every_ms = 0;   // mpaio only: SIGKILL a random stage process this often (stages retry twice)

  [[nodiscard]] bool frames() const { return rows != 0; }
  [[nodiscard]] std::size_t item_bytes() const { return frames() ? rows * cols * 3 : sizeof(std::int64_t); }
};

enum ScenarioId : int {
  kSeedController,
  kPipelinedDiamond,
  kPipelinedDiamond1080p,
  kEmptyStages,
  kLatency,
  kChurnClean,   // the crash-injection pair: the same diamond, clean...
  kChurnKilled,  // ...and with a random stage process killed every 100 ms
};

constexpr Scenario kScenarios[] = {
    {"seed_controller", 0, 10'000, 0, 1, 480, 640, 40, 4, false},
    {"pipelined_diamond", 4'000, 8'000, 1'000, 4, 480, 640, 40, 8, false},
    {"pipelined_diamond_1080p", 4'000, 8'000, 1'000, 4, 1080, 1920, 40, 8, false},
    {"empty_stages", 0, 0, 0, 64, 0, 0, 20'000, 1'000, false},
    {"latency", 0, 0, 0, 1, 0, 0, 5'000, 200, true},
    {"churn_clean", 200, 400, 100, 8, 64, 64, 4'000, 200, false, 0},
    {"churn_killed", 200, 400, 100, 8, 64, 64, 4'000, 200, false, 100},
};

const Scenario& scenario_of(const benchmark::State& state) { return kScenarios[state.range(0)]; }

// ---- the stage functions every engine runs -----------------------------------------------------------------

std::int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

/// Burns `us` microseconds of this thread's CPU time (time it is preempted does not count).
void burn_cpu(std::int64_t us) {
  if (us <= 0) return;
  const std::int64_t end = thread_cpu_ns() + us * 1'000;
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  while (thread_cpu_ns() < end) {
    for (int i = 0; i < 64; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
    benchmark::DoNotOptimize(x);
  }
}

constexpr std::size_t kStride = 4096;  // the bytes an item's maker writes and the detector reads

/// What a camera does to a frame it hands over, cheaply: one byte per page says which item it is.
void write_item(std::uint8_t* data, std::size_t bytes, std::uint64_t id) {
  if (bytes == 0) return;
  if (bytes == sizeof(std::int64_t)) {
    const auto v = static_cast<std::int64_t>(id);
    std::memcpy(data, &v, sizeof v);
    return;
  }
  const auto mark = static_cast<std::uint8_t>(id % 251);
  for (std::size_t k = 0; k < bytes; k += kStride) data[k] = mark;
  data[bytes - 1] = mark;
}

std::int64_t detector(std::span<const std::uint8_t> item, std::int64_t cost_us) {
  burn_cpu(cost_us);
  std::int64_t boxes = item.back();
  for (std::size_t k = 0; k < item.size(); k += kStride) boxes += item[k];
  return boxes;
}

std::int64_t size_estimator(std::span<const std::uint8_t> item, std::int64_t boxes, std::int64_t cost_us) {
  burn_cpu(cost_us);
  return boxes + static_cast<std::int64_t>(item.size());
}

std::int64_t classifier(std::span<const std::uint8_t> item, std::int64_t boxes, std::int64_t cost_us) {
  burn_cpu(cost_us);
  return 2 * boxes + item[item.size() / 2];
}

std::int64_t aggregator(std::int64_t size, std::int64_t kind, std::int64_t cost_us) {
  burn_cpu(cost_us);
  return size * 1'000'003 + kind;
}

/// The aggregator's result for item `id`, computed once per distinct item content (costs 0).
class Expected {
 public:
  explicit Expected(const Scenario& sc) : frames_(sc.frames()) {
    if (!frames_) return;
    std::vector<std::uint8_t> item(sc.item_bytes());
    for (std::uint64_t id = 0; id < 251; ++id) {
      write_item(item.data(), item.size(), id);
      table_.push_back(compute(item));
    }
  }
  [[nodiscard]] std::int64_t operator()(std::uint64_t id) const {
    if (frames_) return table_[id % 251];
    std::uint8_t item[sizeof(std::int64_t)];
    write_item(item, sizeof item, id);
    return compute(item);
  }

 private:
  static std::int64_t compute(std::span<const std::uint8_t> item) {
    const std::int64_t boxes = detector(item, 0);
    return aggregator(size_estimator(item, boxes, 0), classifier(item, boxes, 0), 0);
  }
  bool frames_;
  std::vector<std::int64_t> table_;
};

void report(benchmark::State& state, const Scenario& sc, std::size_t mismatches) {
  state.SetLabel(sc.name);
  state.counters["items_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(sc.items), benchmark::Counter::kIsRate);
  state.counters["max_in_flight"] = static_cast<double>(sc.max_in_flight);
  if (mismatches != 0) state.SkipWithError((std::to_string(mismatches) + " wrong results").c_str());
}

struct Percentiles {
  double p50_us = 0, p99_us = 0, max_us = 0;
};
Percentiles percentiles(std::vector<double> ns) {
  if (ns.empty()) return {};
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) { return ns[std::min(ns.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ns.size())))] / 1e3; };
  return {at(0.5), at(0.99), ns.back() / 1e3};
}

void report_latency(benchmark::State& state, const std::vector<double>& ns) {
  const Percentiles p = percentiles(ns);
  state.counters["p50_us"] = p.p50_us;
  state.counters["p99_us"] = p.p99_us;
  state.counters["max_us"] = p.max_us;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---- sequential ----------------------------------------------------------------------------------------------

void sequential(benchmark::State& state) {
  const Scenario& sc = scenario_of(state);
  const Expected expected(sc);
  std::vector<std::uint8_t> item(sc.item_bytes(), 0);
  std::size_t mismatches = 0;
  std::vector<double> latencies;
  std::uint64_t id = 0;
  auto run = [&](std::size_t n, bool timed) {
    for (std::size_t i = 0; i < n; ++i, ++id) {
      const std::int64_t t0 = now_ns();
      write_item(item.data(), item.size(), id);
      const std::int64_t boxes = detector(item, sc.detector_us);
      const std::int64_t size = size_estimator(item, boxes, sc.middle_us);
      const std::int64_t kind = classifier(item, boxes, sc.middle_us);
      const std::int64_t out = aggregator(size, kind, sc.aggregator_us);
      mismatches += out != expected(id);
      if (timed && sc.latency) latencies.push_back(static_cast<double>(now_ns() - t0));
    }
  };
  run(sc.warmup, false);
  for (auto _ : state) run(sc.items, true);
  report(state, sc, mismatches);
  if (sc.latency) report_latency(state, latencies);
}

// ---- oneTBB flow graph ---------------------------------------------------------------------------------------

namespace flow = oneapi::tbb::flow;

struct TbbItem {
  std::uint64_t id = 0;
  const std::uint8_t* data = nullptr;
  std::size_t bytes = 0;
  std::int64_t boxes = 0;
  [[nodiscard]] std::span<const std::uint8_t> span() const { return {data, bytes}; }
};
struct TbbBranch {
  std::uint64_t id = 0;
  std::int64_t value = 0;
};
using TbbJoined = std::tuple<TbbBranch, TbbBranch>;

/// The diamond as a flow graph, built per batch (a graph is cheap; its threads are TBB's, started once).
/// Items live in a ring of buffers, larger than the items that can be alive at once (max_in_flight in the
/// graph, plus the one the input_node holds while the limiter refuses it).
class TbbDiamond {
 public:
  TbbDiamond(const Scenario& sc, std::vector<std::vector<std::uint8_t>>& ring, const Expected& expected)
      : sc_(sc), ring_(ring), expected_(expected),
        detect_(graph_, flow::serial, [this](TbbItem item) {
          item.boxes = detector(item.span(), sc_.detector_us);
          return item;
        }),
        size_(graph_, flow::serial, [this](const TbbItem& item) {
          return TbbBranch{item.id, size_estimator(item.span(), item.boxes, sc_.middle_us)};
        }),
        classify_(graph_, flow::serial, [this](const TbbItem& item) {
          return TbbBranch{item.id, classifier(item.span(), item.boxes, sc_.middle_us)};
        }),
        join_(graph_, [](const TbbBranch& b) { return b.id; }, [](const TbbBranch& b) { return b.id; }),
        aggregate_(graph_, flow::serial, [this](const TbbJoined& in) {
          const auto& [size, kind] = in;
          const std::int64_t out = aggregator(size.value, kind.value, sc_.aggregator_us);
          mismatches += out != expected_(size.id) || size.id != kind.id;
          ++done;
          return flow::continue_msg();
        }) {
    flow::make_edge(detect_, size_);
    flow::make_edge(detect_, classify_);
    flow::make_edge(size_, flow::input_port<0>(join_));
    flow::make_edge(classify_, flow::input_port<1>(join_));
    flow::make_edge(join_, aggregate_);
  }

  /// Items [first, first + n) with at most max_in_flight in the graph (input_node -> limiter_node).
  void run(std::uint64_t first, std::size_t n) {
    std::uint64_t next = first;
    const std::uint64_t end = first + n;
    flow::input_node<TbbItem> source(graph_, [&](oneapi::tbb::flow_control& fc) -> TbbItem {
      if (next == end) {
        fc.stop();
        return {};
      }
      return make(next++);
    });
    flow::limiter_node<TbbItem> limiter(graph_, sc_.max_in_flight);
    flow::make_edge(source, limiter);
    flow::make_edge(limiter, detect_);
    flow::make_edge(aggregate_, limiter.decrementer());
    source.activate();
    graph_.wait_for_all();
    flow::remove_edge(aggregate_, limiter.decrementer());
    flow::remove_edge(limiter, detect_);
  }

  /// Items one at a time: put, wait for the graph to empty; returns each item's time (ns).
  void run_one_by_one(std::uint64_t first, std::size_t n, std::vector<double>* latencies) {
    for (std::uint64_t id = first; id < first + n; ++id) {
      const std::int64_t t0 = now_ns();
      detect_.try_put(make(id));
      graph_.wait_for_all();
      if (latencies != nullptr) latencies->push_back(static_cast<double>(now_ns() - t0));
    }
  }

  std::size_t mismatches = 0;
  std::size_t done = 0;

 private:
  TbbItem make(std::uint64_t id) {
    std::vector<std::uint8_t>& buffer = ring_[id % ring_.size()];
    write_item(buffer.data(), buffer.size(), id);
    return {id, buffer.data(), buffer.size(), 0};
  }

  const Scenario& sc_;
  std::vector<std::vector<std::uint8_t>>& ring_;
  const Expected& expected_;
  flow::graph graph_;
  flow::function_node<TbbItem, TbbItem> detect_;
  flow::function_node<TbbItem, TbbBranch> size_;
  flow::function_node<TbbItem, TbbBranch> classify_;
  flow::join_node<TbbJoined, flow::key_matching<std::uint64_t>> join_;
  flow::function_node<TbbJoined, flow::continue_msg> aggregate_;
};

void onetbb_flow_graph(benchmark::State& state) {
  const Scenario& sc = scenario_of(state);
  const Expected expected(sc);
  std::vector<std::vector<std::uint8_t>> ring(2 * sc.max_in_flight + 2, std::vector<std::uint8_t>(sc.item_bytes(), 0));
  std::vector<double> latencies;
  std::size_t mismatches = 0, done = 0;
  std::uint64_t id = 0;
  auto batch = [&](std::size_t n, bool timed) {
    TbbDiamond diamond(sc, ring, expected);
    if (sc.latency) {
      diamond.run_one_by_one(id, n, timed ? &latencies : nullptr);
    } else {
      diamond.run(id, n);
    }
    id += n;
    mismatches += diamond.mismatches + (n - diamond.done);
    done += diamond.done;
  };
  batch(sc.warmup, false);  // TBB's threads started, buffers touched
  for (auto _ : state) batch(sc.items, true);
  state.counters["threads"] = static_cast<double>(oneapi::tbb::info::default_concurrency());
  report(state, sc, mismatches);
  if (sc.latency) report_latency(state, latencies);
}

// ---- mpaio Pipeline ------------------------------------------------------------------------------------------

using Frame = mpaio::PoolArray<std::uint8_t>;

std::span<const std::uint8_t> bytes_of(const Frame& frame) { return {frame.data(), frame.size()}; }
std::span<const std::uint8_t> bytes_of(const std::int64_t& value) {
  return {reinterpret_cast<const std::uint8_t*>(&value), sizeof value};
}

struct CostConfig {
  std::int64_t cost_us = 0;
};

template <class In>
struct DetectorStage : mpaio::Stage<DetectorStage<In>> {
  using Config = CostConfig;
  explicit DetectorStage(const Config& config) : cost_us(config.cost_us) {}
  std::int64_t process(const In& item) { return detector(bytes_of(item), cost_us); }
  std::int64_t cost_us;
};

template <class In>
struct SizeEstimatorStage : mpaio::Stage<SizeEstimatorStage<In>> {
  using Config = CostConfig;
  explicit SizeEstimatorStage(const Config& config) : cost_us(config.cost_us) {}
  std::int64_t process(const In& item, std::int64_t boxes) { return size_estimator(bytes_of(item), boxes, cost_us); }
  std::int64_t cost_us;
};

template <class In>
struct ClassifierStage : mpaio::Stage<ClassifierStage<In>> {
  using Config = CostConfig;
  explicit ClassifierStage(const Config& config) : cost_us(config.cost_us) {}
  std::int64_t process(const In& item, std::int64_t boxes) { return classifier(bytes_of(item), boxes, cost_us); }
  std::int64_t cost_us;
};

struct AggregatorStage : mpaio::Stage<AggregatorStage> {
  using Config = CostConfig;
  explicit AggregatorStage(const Config& config) : cost_us(config.cost_us) {}
  std::int64_t process(std::int64_t size, std::int64_t kind) { return aggregator(size, kind, cost_us); }
  std::int64_t cost_us;
};

template <class In>
struct MpaioDiamond {
  mpaio::PipelineBuilder<In> graph;
  mpaio::Port<std::int64_t> output;
  explicit MpaioDiamond(const Scenario& sc) {
    const unsigned retries = sc.kill_every_ms > 0 ? 2 : 0;
    auto item = graph.input();
    auto boxes = graph.template add<DetectorStage<In>>({.name = "detector", .retries = retries}, CostConfig{sc.detector_us}, item);
    auto size = graph.template add<SizeEstimatorStage<In>>({.name = "size_estimator", .retries = retries},
                                                           CostConfig{sc.middle_us}, item, boxes);
    auto kind = graph.template add<ClassifierStage<In>>({.name = "classifier", .retries = retries}, CostConfig{sc.middle_us},
                                                        item, boxes);
    output = graph.template add<AggregatorStage>({.name = "aggregator", .retries = retries}, CostConfig{sc.aggregator_us},
                                                 size, kind);
  }
};

/// A running diamond on a loop of its own, driven batch by batch (the loop runs only while a batch does:
/// the pipeline keeps its loop busy until it is closed).
template <class In>
class MpaioRunner {
 public:
  MpaioRunner(const Scenario& sc, mpaio::SharedMemoryPool* pool, const Expected& expected)
      : sc_(sc),
        pool_(pool),
        expected_(expected),
        diamond_(sc),
        pipeline_(diamond_.graph.build(diamond_.output, io_.get_executor(), {.max_in_flight = sc.max_in_flight})) {}

  MpaioRunner(const MpaioRunner&) = delete;
  MpaioRunner& operator=(const MpaioRunner&) = delete;

  ~MpaioRunner() {
    if (!closed_) finish();
  }

  /// Items [next id, + n); nullptr latencies: throughput (push and pull concurrently).
  void run(std::size_t n, std::vector<double>* latencies) {
    std::exception_ptr failed;
    int running = 0;
    auto on_end = [&](std::exception_ptr e) {
      --running;
      if (e && !failed) {
        failed = e;
        pipeline_.cancel();  // wakes the other coroutine
      }
    };
    const std::uint64_t first = next_id_;
    next_id_ += n;
    if (sc_.latency) {
      ++running;
      asio::co_spawn(io_, one_by_one(first, n, latencies), on_end);
    } else {
      running += 2;
      asio::co_spawn(io_, produce(first, n), on_end);
      asio::co_spawn(io_, consume(first, n), on_end);
    }
    asio::steady_timer killer(io_);
    if (sc_.kill_every_ms > 0) kill_periodically(killer);
    while (running > 0) {
      if (io_.run_one() == 0) throw std::runtime_error("mpaio: the pipeline's loop ran out of work mid-batch");
    }
    killer.cancel();
    while (io_.poll_one() != 0) {  // the killer's cancelled wait
    }
    if (failed) std::rethrow_exception(failed);
  }

  /// SIGKILLs a random stage process every kill_every_ms while the batch runs.
  void kill_periodically(asio::steady_timer& killer) {
    killer.expires_after(std::chrono::milliseconds(sc_.kill_every_ms));
    killer.async_wait([this, &killer](const std::error_code& ec) {
      if (ec) return;
      static constexpr const char* kStages[] = {"detector", "size_estimator", "classifier", "aggregator"};
      if (const pid_t pid = pipeline_.replica_pid(kStages[random_() % 4], 0); pid > 0 && ::kill(pid, SIGKILL) == 0) ++kills;
      kill_periodically(killer);
    });
  }

  /// close(), then the loop runs until the stages are stopped; false if that took over `limit`.
  bool finish(std::chrono::seconds limit = std::chrono::seconds(30)) {
    closed_ = true;
    pipeline_.close();
    io_.restart();
    const auto start = std::chrono::steady_clock::now();
    while (!io_.stopped() && std::chrono::steady_clock::now() - start < limit) io_.run_for(std::chrono::milliseconds(100));
    return io_.stopped();
  }

  std::size_t mismatches = 0;
  std::size_t kills = 0;
  std::size_t failed_items = 0;  // killed on every attempt (crash injection only)

 private:
  In make(std::uint64_t id) {
    if constexpr (std::is_same_v<In, Frame>) {
      Frame frame = pool_->allocate<std::uint8_t>({sc_.rows, sc_.cols, 3});
      write_item(frame.data(), frame.size(), id);
      return frame;
    } else {
      std::int64_t value = 0;
      write_item(reinterpret_cast<std::uint8_t*>(&value), sizeof value, id);
      return value;
    }
  }

  void check(const std::optional<mpaio::PipelineResult<std::int64_t>>& r) {
    if (!r) throw std::runtime_error("mpaio: pull() ended before the batch did");
    if (!r->ok() && sc_.kill_every_ms > 0 && r->failure->kind == mpaio::ItemFailureKind::crash) {
      ++failed_items;
      return;
    }
    if (!r->ok()) throw mpaio::ItemError(*r->failure);
    mismatches += **r != expected_(r->item);
  }

  asio::awaitable<void> produce(std::uint64_t first, std::size_t n) {
    for (std::uint64_t id = first; id < first + n; ++id) {
      const std::uint64_t got = co_await pipeline_.push(make(id));
      if (got != id) throw std::runtime_error("mpaio: push() gave item " + std::to_string(got) + " for " + std::to_string(id));
    }
  }

  asio::awaitable<void> consume(std::uint64_t first, std::size_t n) {
    (void)first;
    for (std::size_t i = 0; i < n; ++i) check(co_await pipeline_.pull());
  }

  asio::awaitable<void> one_by_one(std::uint64_t first, std::size_t n, std::vector<double>* latencies) {
    for (std::uint64_t id = first; id < first + n; ++id) {
      const std::int64_t t0 = now_ns();
      co_await pipeline_.push(make(id));
      check(co_await pipeline_.pull());
      if (latencies != nullptr) latencies->push_back(static_cast<double>(now_ns() - t0));
    }
  }

  const Scenario& sc_;
  mpaio::SharedMemoryPool* pool_;
  const Expected& expected_;
  asio::io_context io_;  // before the pipeline: it outlives it
  MpaioDiamond<In> diamond_;
  mpaio::Pipeline<In, std::int64_t> pipeline_;
  std::uint64_t next_id_ = 0;
  bool closed_ = false;
  std::minstd_rand random_{12345};
};

template <class In>
void mpaio_run(benchmark::State& state, const Scenario& sc, mpaio::SharedMemoryPool* pool) {
  const Expected expected(sc);
  std::vector<double> latencies;
  std::size_t mismatches = 0;
  {
    MpaioRunner<In> runner(sc, pool, expected);
    runner.run(sc.warmup, nullptr);  // stage objects constructed, rings and pool blocks touched
    for (auto _ : state) runner.run(sc.items, sc.latency ? &latencies : nullptr);
    mismatches = runner.mismatches;
    if (sc.kill_every_ms > 0) {
      state.counters["kills"] = static_cast<double>(runner.kills);
      state.counters["failed_items"] = static_cast<double>(runner.failed_items);
    }
    if (!runner.finish()) state.SkipWithError("the pipeline did not stop within 30 s of close()");
  }
  report(state, sc, mismatches);
  if (sc.latency) report_latency(state, latencies);
}

void mpaio_pipeline(benchmark::State& state) {
  const Scenario& sc = scenario_of(state);
  try {
    if (sc.frames()) {
      // Created before the pipeline, so the stage processes hold it; its blocks are touched once here so
      // that no item pays the segment's first page faults.
      auto pool = mpaio::SharedMemoryPool::create({.segment_size = std::size_t{128} << 20});
      {
        std::vector<Frame> warm;
        for (std::size_t i = 0; i < 2 * sc.max_in_flight + 2; ++i) warm.push_back(pool.zeros<std::uint8_t>({sc.rows, sc.cols, 3}));
      }
      mpaio_run<Frame>(state, sc, &pool);
      const mpaio::PoolStats stats = pool.stats();
      if (stats.blocks_in_use != 0 || stats.in_flight != 0) {
        state.SkipWithError(("frames left in the pool: " + std::to_string(stats.blocks_in_use) + " blocks, " +
                             std::to_string(stats.in_flight) + " transfers").c_str());
      }
    } else {
      mpaio_run<std::int64_t>(state, sc, nullptr);
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

constexpr int kAll[] = {kSeedController, kPipelinedDiamond, kPipelinedDiamond1080p, kEmptyStages, kLatency};

void scenarios(benchmark::internal::Benchmark* b) {
  b->ArgName("scenario");
  for (int s : kAll) b->Arg(s);
  b->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
}

/// mpaio's: the shared scenarios and the crash-injection pair.
void mpaio_scenarios(benchmark::internal::Benchmark* b) {
  scenarios(b);
  b->Arg(kChurnClean)->Arg(kChurnKilled);
}

}  // namespace

// mpaio first: its pipelines fork their fork server before TBB has started any thread in this process.
BENCHMARK(mpaio_pipeline)->Apply(mpaio_scenarios);
BENCHMARK(onetbb_flow_graph)->Apply(scenarios);
BENCHMARK(sequential)->Apply(scenarios);

BENCHMARK_MAIN();
