// The pipeline under fire: 20,000 items through the camera diamond while a random replica is SIGKILLed
// every 100 ms, with 2 retries and 0.5% of the items throwing in the classifier. Every id comes back once,
// with the right value or one failure; constructions match the replicas plus the replacements; the pool's
// blocks and transfers, this process's descriptors and children are back where they started.
#include <signal.h>

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <random>
#include <set>
#include <vector>

#include "support/pipeline_stages.hpp"
#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using mpaio_test::rel::ReliabilityTest;

class PipelineSoak : public ReliabilityTest {
 protected:
  PipelineSoak() : ReliabilityTest(std::chrono::seconds(110)) {}
};

TEST_F(PipelineSoak, EveryItemEndsOnceWhileRandomReplicasAreKilled) {
  constexpr std::size_t kItems = 20'000;
  constexpr std::size_t kBytes = 64;
  StageBoard& board = StageBoard::get();
  board.reset();
  board.sleep_us[kSizer] = 100;
  board.sleep_us[kClassifier] = 100;
  std::mt19937_64 random(12345);
  std::set<std::uint64_t> throwing;
  while (throwing.size() < kItems / 200) throwing.insert(random() % StageBoard::kItems);
  for (std::uint64_t id : throwing) board.faults[kClassifier][id] = static_cast<std::int64_t>(Fault::throw_always);

  auto pool = mpaio::SharedMemoryPool::create();
  const std::size_t fds_before = open_fds_of(::getpid()).size();
  Diamond diamond(/*middle_replicas=*/2, /*retries=*/2);
  const std::vector<std::pair<const char*, unsigned>> replicas = {
      {"detector", 0}, {"size_estimator", 0}, {"size_estimator", 1}, {"classifier", 0}, {"classifier", 1}, {"aggregator", 0}};
  std::vector<std::size_t> kills(4, 0);
  std::vector<mpaio::PipelineResult<Summary>> results;
  std::vector<mpaio::StageStats> stats;
  {
    asio::io_context io;
    auto pipeline = diamond.graph.build(diamond.output, io.get_executor(), {.max_in_flight = 16});
    bool done = false;
    asio::steady_timer killer(io);
    std::function<void()> kill_one = [&] {
      killer.expires_after(std::chrono::milliseconds(100));
      killer.async_wait([&](const std::error_code& ec) {
        if (ec || done) return;
        const auto& [stage, replica] = replicas[random() % replicas.size()];
        if (const pid_t pid = pipeline.replica_pid(stage, replica); pid > 0 && ::kill(pid, SIGKILL) == 0) {
          const std::string name = stage;
          ++kills[name == "detector" ? kDetector : name == "size_estimator" ? kSizer : name == "classifier" ? kClassifier : kAggregator];
        }
        kill_one();
      });
    };
    kill_one();
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (std::uint64_t id = 0; id < kItems; ++id) co_await pipeline.push(make_frame(pool, id % StageBoard::kItems, kBytes));
      pipeline.close();
    }, asio::detached);
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      co_await pipeline.collect(results);
      done = true;
      killer.cancel();
    }, asio::detached);
    io.run();
    stats = pipeline.stats();
    EXPECT_EQ(pipeline.unfinished(), 0u);
  }

  ASSERT_EQ(results.size(), kItems);
  std::size_t failed = 0;
  for (std::size_t i = 0; i < kItems; ++i) {
    const auto& r = results[i];
    ASSERT_EQ(r.item, i) << "input order, each id once";
    const std::uint64_t key = i % StageBoard::kItems;  // the board's fault slot and the frame's contents
    if (throwing.count(key) != 0) {
      ASSERT_FALSE(r.ok()) << "item " << i << " throws on every attempt";
      if (r.failure->kind == mpaio::ItemFailureKind::exception) {
        EXPECT_EQ(r.failure->stage, "classifier");
      }
      ++failed;
      continue;
    }
    if (!r.ok()) {  // three kills in a row on the same item
      EXPECT_NE(r.failure->kind, mpaio::ItemFailureKind::exception) << r.failure->describe();
      ++failed;
      continue;
    }
    const Summary want = expected_summary(key, kBytes);
    ASSERT_EQ(r.value->size, want.size) << "item " << i;
    ASSERT_EQ(r.value->kind, want.kind) << "item " << i;
  }
  std::size_t total_kills = 0;
  for (int k = 0; k < 4; ++k) {
    const unsigned n = stats[k].replicas;
    EXPECT_GE(board.constructed[k], static_cast<std::int64_t>(n + stats[k].restarts)) << stats[k].name;
    EXPECT_LE(board.constructed[k], static_cast<std::int64_t>(n + kills[k])) << stats[k].name;
    EXPECT_LE(stats[k].restarts, kills[k]) << stats[k].name;
    total_kills += kills[k];
  }
  EXPECT_GE(total_kills, 3u) << "the run lasted long enough to be shot at";
  RecordProperty("kills", static_cast<int>(total_kills));
  RecordProperty("failed", static_cast<int>(failed));
  std::cout << "kills " << total_kills << ", failed items " << failed << "\n";
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  EXPECT_EQ(pool.stats().in_flight, 0u);
  EXPECT_EQ(open_fds_of(::getpid()).size(), fds_before) << describe_fds(open_fds_of(::getpid()));
}

}  // namespace
