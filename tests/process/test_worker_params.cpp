// Run parameters: Derived::Params given when a worker is made reach `process` as `const Params&` on every
// executor, travel to each worker process once per run (never per chunk), are decoded there once per run,
// and carry what the program decided after the pool was made (which globals never do).
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>

#include "mpaio/mpaio.hpp"
#include "support/engine.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::ArrayView;
using mpaio::DataIterator;
using mpaio::Range;
using mpaio_test::ExecutorKind;

/// How many times this process decoded a Scale (a worker process decodes each run's parameters once).
std::int64_t g_decodes = 0;

struct Scale {
  std::int64_t factor = 1;
  std::string label;
  template <class Archive>
  void save(Archive& ar) const { ar(factor, label); }
  template <class Archive>
  void load(Archive& ar) {
    ar(factor, label);
    ++g_decodes;
  }
};

struct Result {
  std::int64_t sum = 0;
  std::int64_t decodes = 0;
  std::int64_t label_size = 0;
};

/// Sums its chunk times the factor of its parameters.
struct ScaledSum : mpaio::Worker<ScaledSum, Result> {
  using Worker::Worker;
  using Params = Scale;
  static Result process(ArrayView<const std::int64_t> data, Range r, const Params& p) {
    std::int64_t sum = 0;
    for (std::int64_t v : data.slice(r)) sum += v;
    return {sum * p.factor, g_decodes, static_cast<std::int64_t>(p.label.size())};
  }
  void process_callback(Result r) {
    total += r.sum;
    most_decodes = std::max(most_decodes, r.decodes);
    label_size = r.label_size;
  }
  std::int64_t total = 0;
  std::int64_t most_decodes = 0;
  std::int64_t label_size = 0;
};

/// The same with a StopToken after the parameters.
struct StoppableScaledSum : mpaio::Worker<StoppableScaledSum, std::int64_t> {
  using Worker::Worker;
  using Params = Scale;
  static std::int64_t process(ArrayView<const std::int64_t> data, Range r, const Params& p, const mpaio::StopToken& stop) {
    std::int64_t sum = 0;
    for (std::int64_t v : data.slice(r)) sum += stop.stop_requested() ? 0 : v;
    return sum * p.factor;
  }
  void process_callback(std::int64_t v) { total += v; }
  std::int64_t total = 0;
};

class WorkerParams : public ::testing::TestWithParam<ExecutorKind> {
 protected:
  mpaio_test::Watchdog watchdog_{60};
};

TEST_P(WorkerParams, EachWorkerObjectsParametersReachItsChunks) {
  auto executor = mpaio_test::make_executor(GetParam(), 2);
  auto ints = mpaio::SharedArray<std::int64_t>::create({1000});
  std::iota(ints.begin(), ints.end(), 1);
  // Two workers of one type, with other parameters, in one run.
  ScaledSum doubled{DataIterator::chunks(ints.meta(), 10), Scale{2, "twice"}};
  ScaledSum tripled{DataIterator::chunks(ints.meta(), 7), Scale{3, std::string(100'000, 'x')}};
  StoppableScaledSum negated{DataIterator::partitions(ints.meta(), 4), Scale{-1, ""}};
  EXPECT_EQ(doubled.params().factor, 2);
  mpaio::WorkerOrchestrator orchestrator{*executor, {&doubled, &tripled, &negated}};
  (void)orchestrator.run_blocking();
  EXPECT_EQ(doubled.total, 2 * 500'500);
  EXPECT_EQ(tripled.total, 3 * 500'500);
  EXPECT_EQ(negated.total, -500'500);
  EXPECT_EQ(tripled.label_size, 100'000);
}

INSTANTIATE_TEST_SUITE_P(Executors, WorkerParams,
                         ::testing::Values(ExecutorKind::inline_, ExecutorKind::thread, ExecutorKind::process),
                         [](const auto& info) { return std::string(mpaio_test::kind_name(info.param)); });

TEST(WorkerParamsProcess, TravelOncePerRunAndAreDecodedOncePerRunInEachWorker) {
  mpaio_test::Watchdog watchdog(60);
  mpaio::ProcessPoolExecutor pool{{.workers = 2}};
  auto ints = mpaio::SharedArray<std::int64_t>::create({10'000});
  std::iota(ints.begin(), ints.end(), 1);
  const std::string big(64 * 1024, 'p');  // far larger than a task record: it must not travel per chunk
  for (int run = 1; run <= 3; ++run) {
    const mpaio::ChannelTraffic before = pool.channel_traffic();
    ScaledSum worker{DataIterator::chunks(ints.meta(), 10), Scale{run, big}};
    mpaio::WorkerOrchestrator orchestrator{pool, {&worker}};
    (void)orchestrator.run_blocking();
    EXPECT_EQ(worker.total, run * std::int64_t{50'005'000});
    const mpaio::ChannelTraffic after = pool.channel_traffic();
    const double per_chunk = static_cast<double>(after.task_bytes - before.task_bytes) / (after.chunks - before.chunks);
    EXPECT_LT(per_chunk, 128.0) << "the parameters travel once per run, not with each chunk";
    EXPECT_LE(worker.most_decodes, run) << "each worker process decodes a run's parameters once";
  }
}

/// A threshold the program decides after the pool was made reaches the workers as a parameter.
struct Threshold : mpaio::Worker<Threshold, std::int64_t> {
  using Worker::Worker;
  using Params = std::int64_t;
  static std::int64_t process(ArrayView<const std::int64_t> data, Range r, const Params& at_least) {
    std::int64_t n = 0;
    for (std::int64_t v : data.slice(r)) n += v >= at_least;
    return n;
  }
  void process_callback(std::int64_t n) { count += n; }
  std::int64_t count = 0;
};

TEST(WorkerParamsProcess, CarryWhatTheProgramDecidedAfterThePoolWasMade) {
  mpaio_test::Watchdog watchdog(60);
  mpaio::ProcessPoolExecutor pool{{.workers = 2}};
  auto ints = mpaio::SharedArray<std::int64_t>::create({100});
  std::iota(ints.begin(), ints.end(), 1);
  for (std::int64_t at_least : {1, 50, 100, 101}) {
    Threshold worker{DataIterator::chunks(ints.meta(), 9), at_least};
    mpaio::WorkerOrchestrator orchestrator{pool, {&worker}};
    (void)orchestrator.run_blocking();
    EXPECT_EQ(worker.count, std::max<std::int64_t>(0, 101 - at_least)) << "at least " << at_least;
  }
}

}  // namespace
