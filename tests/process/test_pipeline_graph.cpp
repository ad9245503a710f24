// Pipelines on real stage processes: the camera diamond joins both branches by item id, with replicas and
// in either result order; graphs that cannot run are refused before anything starts; frames are shared,
// never copied, and their blocks go back to the pool; map() over items.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <algorithm>
#include <sstream>
#include <map>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/pipeline_stages.hpp"
#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using mpaio_test::rel::ReliabilityTest;
using mpaio::PipelineOptions;
using mpaio::ResultOrder;

constexpr std::size_t kFrameBytes = 4096;

class PipelineGraph : public ReliabilityTest {
 protected:
  void SetUp() override { StageBoard::get().reset(); }
  mpaio::SharedMemoryPool pool = mpaio::SharedMemoryPool::create();
};

/// Pushes `n` frames through the diamond and collects every result.
std::vector<mpaio::PipelineResult<Summary>> run_diamond(mpaio::SharedMemoryPool& pool, Diamond& diamond, std::size_t n,
                                                        PipelineOptions options) {
  asio::io_context io;
  auto pipeline = diamond.graph.build(diamond.output, io.get_executor(), options);
  std::vector<mpaio::PipelineResult<Summary>> results;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    for (std::uint64_t id = 0; id < n; ++id) {
      const std::uint64_t got = co_await pipeline.push(make_frame(pool, id, kFrameBytes));
      EXPECT_EQ(got, id);
    }
    pipeline.close();
  }, asio::detached);
  asio::co_spawn(io, pipeline.collect(results), asio::detached);
  io.run();
  return results;
}

void expect_all_correct(const std::vector<mpaio::PipelineResult<Summary>>& results, std::size_t n) {
  ASSERT_EQ(results.size(), n);
  std::set<std::uint64_t> seen;
  for (const auto& r : results) {
    EXPECT_TRUE(seen.insert(r.item).second) << "item " << r.item << " handed back twice";
    ASSERT_TRUE(r.ok()) << r.failure->describe();
    const Summary want = expected_summary(r.item, kFrameBytes);
    EXPECT_EQ(r.value->size, want.size) << "item " << r.item;
    EXPECT_EQ(r.value->kind, want.kind) << "item " << r.item;
  }
}

TEST_F(PipelineGraph, TheDiamondJoinsBothBranchesByItemIdWithReplicasInCompletionOrder) {
  StageBoard::get().sleep_us[kSizer] = 300;  // the branches finish at different times
  Diamond diamond(/*middle_replicas=*/2);
  const auto results = run_diamond(pool, diamond, 300, {.max_in_flight = 8, .order = ResultOrder::completion});
  expect_all_correct(results, 300);
  StageBoard& b = StageBoard::get();
  EXPECT_EQ(b.constructed[kDetector], 1);
  EXPECT_EQ(b.constructed[kSizer], 2) << "one object per replica process";
  EXPECT_EQ(b.constructed[kClassifier], 2);
  EXPECT_EQ(b.destroyed[kSizer], 2) << "close() destroys the stage objects";
  EXPECT_EQ(pool.stats().blocks_in_use, 0u) << "every frame went back to the pool";
  EXPECT_EQ(pool.stats().in_flight, 0u);
}

TEST_F(PipelineGraph, InputOrderIsRestoredWhenReplicasFinishOutOfOrder) {
  StageBoard& b = StageBoard::get();
  b.sleep_us[kClassifier] = 200;
  for (std::size_t i = 0; i < 200; i += 3) b.faults[kDetector][i] = 0;
  Diamond diamond(/*middle_replicas=*/3);
  const auto results = run_diamond(pool, diamond, 200, {.max_in_flight = 12, .order = ResultOrder::input});
  expect_all_correct(results, 200);
  for (std::size_t i = 0; i < results.size(); ++i) EXPECT_EQ(results[i].item, i);
}

TEST_F(PipelineGraph, AFailedItemKeepsItsPlaceInInputOrderAndNamesWhereItFailed) {
  StageBoard::get().faults[kClassifier][5] = static_cast<std::int64_t>(Fault::throw_always);
  Diamond diamond(2);
  const auto results = run_diamond(pool, diamond, 20, {.max_in_flight = 6});
  ASSERT_EQ(results.size(), 20u);
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].item, i);
    EXPECT_EQ(results[i].ok(), i != 5) << "item " << i;
  }
  const mpaio::ItemFailure& f = *results[5].failure;
  EXPECT_EQ(f.item, 5u);
  EXPECT_EQ(f.kind, mpaio::ItemFailureKind::exception);
  EXPECT_EQ(f.stage, "classifier");
  EXPECT_GT(f.pid, 0);
  EXPECT_EQ(f.error_type, "std::runtime_error");
  EXPECT_EQ(f.message, "bad item 5");
  EXPECT_NE(f.describe().find("item 5 failed in stage 'classifier'"), std::string::npos) << f.describe();
  EXPECT_THROW((void)*results[5], mpaio::ItemError);
  EXPECT_EQ(pool.stats().blocks_in_use, 0u) << "the failed item's frame and the other branch's value are released";
}

TEST_F(PipelineGraph, StatsAndTheTraceShowEveryStageAndReplica) {
  StageBoard::get().sleep_us[kClassifier] = 500;
  Diamond diamond(/*middle_replicas=*/2);
  asio::io_context io;
  auto pipeline = diamond.graph.build(diamond.output, io.get_executor(), {.max_in_flight = 6, .trace = true});
  std::vector<mpaio::PipelineResult<Summary>> results;
  std::vector<Frame> frames;
  for (std::uint64_t id = 0; id < 40; ++id) frames.push_back(make_frame(pool, id, kFrameBytes));
  asio::co_spawn(io, pipeline.feed(std::move(frames)), asio::detached);
  asio::co_spawn(io, pipeline.collect(results), asio::detached);
  io.run();
  expect_all_correct(results, 40);
  const auto stats = pipeline.stats();
  ASSERT_EQ(stats.size(), 4u);
  const char* names[] = {"detector", "size_estimator", "classifier", "aggregator"};
  for (std::size_t s = 0; s < 4; ++s) {
    EXPECT_EQ(stats[s].name, names[s]);
    EXPECT_EQ(stats[s].items, 40u) << names[s];
    EXPECT_EQ(stats[s].failures, 0u);
    EXPECT_EQ(stats[s].constructed, stats[s].replicas) << names[s];
    EXPECT_EQ(stats[s].queued, 0u);
  }
  EXPECT_GE(stats[2].busy_ns, 40 * 500'000) << "the classifier slept 0.5 ms per item";
  const std::string table = mpaio::format_stage_table(stats, 1.0);
  EXPECT_NE(table.find("classifier"), std::string::npos) << table;

  std::ostringstream out;
  pipeline.write_trace_json(out);
  const auto trace = nlohmann::json::parse(out.str());
  std::set<std::string> tracks;
  std::map<std::string, std::size_t> spans;  // per track name
  std::map<int, std::string> track_of;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] == "M") track_of[e["tid"].get<int>()] = e["args"]["name"].get<std::string>();
  }
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] == "X") ++spans[track_of.at(e["tid"].get<int>())];
  }
  EXPECT_EQ(track_of.size(), 6u) << "a track per replica: 1 + 2 + 2 + 1";
  EXPECT_EQ(spans["detector #0"], 40u);
  EXPECT_EQ(spans["classifier #0"] + spans["classifier #1"], 40u);
  EXPECT_EQ(spans["aggregator #0"], 40u);
}

TEST_F(PipelineGraph, GraphsThatCannotRunAreRefusedBeforeAnythingStarts) {
  asio::io_context io;
  const auto before = children_of(::getpid());
  {
    mpaio::PipelineBuilder<Frame> graph;
    auto sum = graph.add<Detector>({}, graph.input());
    auto size = graph.add<SizeEstimator>({}, graph.input(), sum);
    (void)graph.add<Classifier>({}, graph.input(), sum);  // its output goes nowhere
    EXPECT_THROW(
        {
          try {
            (void)graph.build(size, io.get_executor());
          } catch (const mpaio::InvalidArgument& e) {
            EXPECT_NE(std::string(e.what()).find("goes nowhere"), std::string::npos) << e.what();
            throw;
          }
        },
        mpaio::InvalidArgument);
  }
  {
    mpaio::PipelineBuilder<Frame> graph;
    EXPECT_THROW((void)graph.build(graph.input(), io.get_executor()), mpaio::InvalidArgument) << "no stage";
  }
  {
    mpaio::PipelineBuilder<Frame> a, b;
    EXPECT_THROW((void)b.add<Detector>({}, a.input()), mpaio::InvalidArgument) << "a port of another builder";
    EXPECT_THROW((void)b.add<Detector>({}, mpaio::Port<Frame>{}), mpaio::InvalidArgument) << "a port of no builder";
  }
  {
    mpaio::PipelineBuilder<Frame> graph;
    auto out = graph.add<Detector>({.replicas = 0}, graph.input());
    EXPECT_THROW((void)graph.build(out, io.get_executor()), mpaio::InvalidArgument) << "no replica";
  }
  {
    mpaio::PipelineBuilder<Frame> graph;
    auto sum = graph.add<Detector>({.name = "x"}, graph.input());
    auto size = graph.add<SizeEstimator>({.name = "x"}, graph.input(), sum);
    EXPECT_THROW((void)graph.build(size, io.get_executor()), mpaio::InvalidArgument) << "two stages named x";
  }
  {
    mpaio::PipelineBuilder<Frame> graph;
    auto sum = graph.add<Detector>({}, graph.input());
    EXPECT_THROW((void)graph.build(sum, io.get_executor(), {.max_in_flight = 0}), mpaio::InvalidArgument);
  }
  EXPECT_EQ(children_of(::getpid()), before) << "nothing was started";
}

/// A stage whose result is a new pool array: it travels back as a transfer, and the caller owns it.
struct Doubler : mpaio::Stage<Doubler> {
  Frame process(const Frame& frame) {
    mpaio::SharedMemoryPool* pool = mpaio::SharedMemoryPool::find(pool_id);
    Frame out = pool->allocate<std::uint8_t>({frame.size()});
    for (std::size_t i = 0; i < frame.size(); ++i) out[i] = static_cast<std::uint8_t>(frame[i] * 2);
    return out;
  }
  static inline std::uint64_t pool_id = 0;
};

TEST_F(PipelineGraph, AStageMayReturnAPoolArrayWhichTheCallerThenOwns) {
  Doubler::pool_id = pool.id();
  std::vector<Frame> frames;
  for (std::uint64_t id = 0; id < 16; ++id) frames.push_back(make_frame(pool, id, 1000));
  auto results = mpaio::map<Doubler>(std::move(frames), {.replicas = 2});
  ASSERT_EQ(results.size(), 16u);
  for (auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.failure->describe();
    EXPECT_EQ((*r)[999], static_cast<std::uint8_t>((r.item % 251) * 2));
  }
  EXPECT_EQ(pool.stats().blocks_in_use, 16u) << "the 16 results; the inputs were freed";
  {
    std::vector<Frame> bad;
    bad.push_back(make_frame(pool, 1, 1000));
    bad.emplace_back();  // empty: push() refuses it, and map() throws rather than wait for its result
    EXPECT_THROW((void)mpaio::map<Doubler>(std::move(bad)), mpaio::InvalidArgument);
  }
  results.clear();
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  EXPECT_EQ(pool.stats().in_flight, 0u);
}

struct Square : mpaio::Stage<Square> {
  struct Config {
    std::int64_t offset = 0;
  };
  explicit Square(const Config& c) : offset(c.offset) {}
  std::int64_t process(std::int64_t x, const mpaio::ItemContext& item) {
    if (x == 13) throw std::invalid_argument("unlucky");
    return x * x + offset + static_cast<std::int64_t>(item.attempt);
  }
  std::int64_t offset;
};

TEST_F(PipelineGraph, MapRunsAFunctionOverItemsInInputOrderWithPerItemFailures) {
  std::vector<std::int64_t> xs;
  for (std::int64_t i = 0; i < 1000; ++i) xs.push_back(i);
  auto results = mpaio::map<Square>(xs, Square::Config{7}, {.replicas = 2}, {.max_in_flight = 16});
  ASSERT_EQ(results.size(), xs.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].item, i);
    if (i == 13) {
      ASSERT_FALSE(results[i].ok());
      EXPECT_EQ(results[i].failure->error_type, "std::invalid_argument");
      continue;
    }
    ASSERT_TRUE(results[i].ok()) << results[i].failure->describe();
    EXPECT_EQ(*results[i], static_cast<std::int64_t>(i * i + 7));
  }
  // fail_fast: the first failure is thrown, every other item is accounted for.
  EXPECT_THROW((void)mpaio::map<Square>(xs, Square::Config{0}, {}, {.on_error = mpaio::ErrorPolicy::fail_fast}),
               mpaio::ItemError);
}

}  // namespace
