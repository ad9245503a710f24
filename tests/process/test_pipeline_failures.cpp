// Pipelines that fail: exceptions, crashed and hung replicas, stages that cannot be constructed, fail-fast,
// cancellation and destruction mid-run, and back-pressure. Every pushed item ends exactly once (delivered,
// failed, or counted unfinished) and nothing is left behind (the fixture checks children and segments).
#include <signal.h>

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <set>
#include <vector>

#include "support/pipeline_stages.hpp"
#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using mpaio::ItemFailureKind;
using mpaio::PipelineOptions;
using mpaio_test::rel::ReliabilityTest;
using std::chrono::milliseconds;

constexpr std::size_t kFrameBytes = 512;

class PipelineFailures : public ReliabilityTest {
 protected:
  void SetUp() override { StageBoard::get().reset(); }
  void set_fault(StageKind kind, std::size_t item, Fault fault) {
    StageBoard::get().faults[kind][item] = static_cast<std::int64_t>(fault);
  }
  mpaio::SharedMemoryPool pool = mpaio::SharedMemoryPool::create();
};

struct Outcome {
  std::vector<mpaio::PipelineResult<Summary>> results;
  std::vector<mpaio::StageStats> stats;
  std::exception_ptr error;
  std::uint64_t unfinished = 0;
};

/// Pushes `n` frames through `diamond` and pulls until the end (or an exception).
Outcome run(mpaio::SharedMemoryPool& pool, Diamond& diamond, std::size_t n, PipelineOptions options) {
  asio::io_context io;
  Outcome out;
  {
    auto pipeline = diamond.graph.build(diamond.output, io.get_executor(), options);
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (std::uint64_t id = 0; id < n; ++id) co_await pipeline.push(make_frame(pool, id, kFrameBytes));
      pipeline.close();
    }, [&](std::exception_ptr e) { if (e && !out.error) out.error = e; });
    asio::co_spawn(io, pipeline.collect(out.results), [&](std::exception_ptr e) {
      if (e && !out.error) out.error = e;
    });
    io.run();
    out.stats = pipeline.stats();
    out.unfinished = pipeline.unfinished();
  }
  return out;
}

std::string message_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
  return {};
}

TEST_F(PipelineFailures, AnExceptionIsRetriedThenReportedWithItsStageReplicaPidAndAttempt) {
  set_fault(kClassifier, 3, Fault::throw_first);
  set_fault(kClassifier, 7, Fault::throw_always);
  Diamond diamond(1, /*retries=*/2);
  const Outcome out = run(pool, diamond, 12, {.max_in_flight = 4});
  ASSERT_FALSE(out.error) << message_of(out.error);
  ASSERT_EQ(out.results.size(), 12u);
  EXPECT_TRUE(out.results[3].ok()) << "its second attempt succeeded";
  ASSERT_FALSE(out.results[7].ok());
  const mpaio::ItemFailure& f = *out.results[7].failure;
  EXPECT_EQ(f.stage, "classifier");
  EXPECT_EQ(f.attempt, 2u) << "three attempts in all";
  EXPECT_EQ(f.replica, 0u);
  EXPECT_GT(f.pid, 0);
  EXPECT_EQ(f.message, "bad item 7");
  EXPECT_EQ(out.stats[2].failures, 4u) << "one for item 3, three for item 7";
  EXPECT_EQ(StageBoard::get().constructed[kClassifier], 1) << "an exception does not cost the replica";
}

TEST_F(PipelineFailures, ACrashedReplicaIsReplacedItsConstructorRunsAgainAndTheItemIsRetried) {
  set_fault(kDetector, 4, Fault::kill_first);
  Diamond diamond(1, /*retries=*/1);
  const Outcome out = run(pool, diamond, 20, {.max_in_flight = 4, .replica_queue = 3});
  ASSERT_FALSE(out.error) << message_of(out.error);
  ASSERT_EQ(out.results.size(), 20u);
  for (const auto& r : out.results) {
    ASSERT_TRUE(r.ok()) << r.failure->describe();
    EXPECT_EQ(r.value->kind, expected_summary(r.item, kFrameBytes).kind);
  }
  EXPECT_EQ(StageBoard::get().constructed[kDetector], 2);
  EXPECT_EQ(out.stats[0].restarts, 1u);
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  EXPECT_EQ(pool.stats().in_flight, 0u);
}

TEST_F(PipelineFailures, WithoutRetriesOnlyTheItemTheReplicaWasHandlingFailsNamingTheSignal) {
  set_fault(kSizer, 2, Fault::kill_first);
  Diamond diamond;
  const Outcome out = run(pool, diamond, 10, {.max_in_flight = 6, .replica_queue = 4});
  ASSERT_FALSE(out.error) << message_of(out.error);
  ASSERT_EQ(out.results.size(), 10u);
  for (const auto& r : out.results) EXPECT_EQ(r.ok(), r.item != 2) << "item " << r.item << " queued behind is not blamed";
  const mpaio::ItemFailure& f = *out.results[2].failure;
  EXPECT_EQ(f.kind, ItemFailureKind::crash);
  EXPECT_EQ(f.stage, "size_estimator");
  EXPECT_NE(f.message.find("signal 9"), std::string::npos) << f.message;
  EXPECT_EQ(pool.stats().blocks_in_use, 0u) << "the classifier's result for item 2 was dropped with its frame";
}

TEST_F(PipelineFailures, AStageThatCannotBeConstructedFailsThePipelineNamingItWithoutATightLoop) {
  StageBoard::get().fail_construction[kClassifier] = 1000;
  Diamond diamond;
  const auto start = std::chrono::steady_clock::now();
  const Outcome out = run(pool, diamond, 5, {.max_in_flight = 2});
  ASSERT_TRUE(out.error);
  try {
    std::rethrow_exception(out.error);
  } catch (const mpaio::StageInitError& e) {
    EXPECT_EQ(e.stage(), "classifier");
    EXPECT_NE(std::string(e.what()).find("no model in this process"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("3 times"), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a StageInitError: " << e.what();
  }
  EXPECT_EQ(1000 - StageBoard::get().fail_construction[kClassifier], 3) << "max_init_failures constructions, no more";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  for (const auto& r : out.results) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.failure->kind, ItemFailureKind::stage_init);
  }
  EXPECT_EQ(out.results.size() + out.unfinished, 2u) << "the two admitted items are accounted for";
}

TEST_F(PipelineFailures, AnItemPastTheTimeoutIsStoppedAndRetriedOrReported) {
  set_fault(kAggregator, 1, Fault::hang_first);
  set_fault(kAggregator, 4, Fault::hang_always);
  Diamond diamond(1, /*retries=*/1, milliseconds(300));
  const Outcome out = run(pool, diamond, 6, {.max_in_flight = 3, .timeout_grace = milliseconds(100)});
  ASSERT_FALSE(out.error) << message_of(out.error);
  ASSERT_EQ(out.results.size(), 6u);
  for (const auto& r : out.results) EXPECT_EQ(r.ok(), r.item != 4) << "item " << r.item;
  EXPECT_EQ(out.results[4].failure->kind, ItemFailureKind::timeout);
  EXPECT_NE(out.results[4].failure->message.find("300 ms"), std::string::npos) << out.results[4].failure->message;
  EXPECT_EQ(StageBoard::get().constructed[kAggregator], 4) << "each stopped replica was replaced";
}

TEST_F(PipelineFailures, FailFastThrowsTheFirstFailureAndAccountsForEveryOtherItem) {
  set_fault(kDetector, 6, Fault::throw_always);
  StageBoard::get().sleep_us[kSizer] = 2000;
  Diamond diamond;
  const Outcome out = run(pool, diamond, 40, {.max_in_flight = 4, .on_error = mpaio::ErrorPolicy::fail_fast});
  ASSERT_TRUE(out.error);
  EXPECT_NE(message_of(out.error).find("item 6 failed in stage 'detector'"), std::string::npos) << message_of(out.error);
  std::size_t pushed = 0;
  for (const auto& r : out.results) pushed = std::max<std::size_t>(pushed, r.item + 1);
  EXPECT_LE(out.results.size() + out.unfinished + 1, 40u);
  EXPECT_GE(out.results.size() + out.unfinished + 1, 7u) << "items 0..6 at least were admitted";
  EXPECT_EQ(pool.stats().in_flight, 0u);
}

TEST_F(PipelineFailures, FailFastWithAResultHandlerHandsItTheFailureAndEveryItemIsAccountedFor) {
  set_fault(kDetector, 3, Fault::throw_always);
  Diamond diamond;
  asio::io_context io;
  std::vector<mpaio::PipelineResult<Summary>> seen;
  std::uint64_t pushed = 0;
  std::exception_ptr push_error;
  {
    auto pipeline = diamond.graph.build(diamond.output, io.get_executor(),
                                        {.max_in_flight = 4, .on_error = mpaio::ErrorPolicy::fail_fast});
    pipeline.on_result([&](mpaio::PipelineResult<Summary> r) {
      const bool failed = !r.ok();
      seen.push_back(std::move(r));
      if (failed) pipeline.cancel();  // a handler that reacts at once: the items are not counted twice
    });
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (std::uint64_t id = 0; id < 50; ++id) {
        co_await pipeline.push(make_frame(pool, id, kFrameBytes));
        ++pushed;
      }
    }, [&](std::exception_ptr e) { push_error = e; });
    io.run();
    ASSERT_TRUE(push_error) << "push() throws once the pipeline failed";
    std::size_t failures = 0;
    for (const auto& r : seen) failures += !r.ok();
    EXPECT_EQ(failures, 1u);
    EXPECT_EQ(seen.size() + pipeline.unfinished(), pushed);
    EXPECT_EQ(pipeline.in_flight(), 0u);
  }
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
}

TEST_F(PipelineFailures, CancellationStopsTheStagesAndAccountsForEveryItem) {
  StageBoard::get().sleep_us[kClassifier] = 20'000;
  Diamond diamond;
  asio::io_context io;
  std::vector<mpaio::PipelineResult<Summary>> results;
  std::uint64_t pushed = 0;
  std::vector<pid_t> pids;
  {
    auto pipeline = diamond.graph.build(diamond.output, io.get_executor(), {.max_in_flight = 8});
    pids = {pipeline.replica_pid("detector", 0), pipeline.replica_pid("classifier", 0)};
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (std::uint64_t id = 0; id < 100; ++id) {
        co_await pipeline.push(make_frame(pool, id, kFrameBytes));
        ++pushed;
      }
    }, [](std::exception_ptr) {});  // push throws once cancelled
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      while (auto r = co_await pipeline.pull()) {
        results.push_back(std::move(*r));
        if (results.size() == 3) pipeline.cancel();
      }
    }, asio::detached);
    io.run();
    EXPECT_EQ(results.size() + pipeline.unfinished(), pushed) << "each item delivered or unfinished";
    EXPECT_GT(pipeline.unfinished(), 0u);
    EXPECT_EQ(pipeline.in_flight(), 0u);
  }
  EXPECT_TRUE(wait_gone(pids).empty()) << "the stage processes are gone";
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  EXPECT_EQ(pool.stats().in_flight, 0u);
}

TEST_F(PipelineFailures, AnAsioCancellationOfAWaitingPullCancelsThePipeline) {
  StageBoard::get().sleep_us[kAggregator] = 50'000;
  Diamond diamond;
  asio::io_context io;
  std::exception_ptr pulled;
  bool pull_ended = false;
  {
    auto pipeline = diamond.graph.build(diamond.output, io.get_executor(), {.max_in_flight = 4});
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (std::uint64_t id = 0; id < 4; ++id) co_await pipeline.push(make_frame(pool, id, kFrameBytes));
    }, asio::detached);
    asio::cancellation_signal cancel_pull;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> { (void)co_await pipeline.pull(); },
                   asio::bind_cancellation_slot(cancel_pull.slot(), [&](std::exception_ptr e) {
                     pulled = e;
                     pull_ended = true;
                   }));
    asio::steady_timer later(io, milliseconds(20));
    later.async_wait([&](const std::error_code&) { cancel_pull.emit(asio::cancellation_type::terminal); });
    io.run();
    EXPECT_TRUE(pull_ended);
    ASSERT_TRUE(pulled) << "the cancelled pull() throws";
    try {
      std::rethrow_exception(pulled);
    } catch (const mpaio::RunCancelled& e) {
      EXPECT_NE(std::string(e.what()).find("4 items unfinished"), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not RunCancelled: " << e.what();
    }
    EXPECT_EQ(pipeline.unfinished(), 4u);
    EXPECT_EQ(pipeline.in_flight(), 0u);
  }
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
}

TEST_F(PipelineFailures, DestroyingAPipelineMidRunLeavesNoProcessAndNoBlock) {
  StageBoard::get().sleep_us[kSizer] = 5'000;
  Diamond diamond(2);
  asio::io_context io;
  std::vector<pid_t> pids;
  {
    auto pipeline = diamond.graph.build(diamond.output, io.get_executor(), {.max_in_flight = 6, .shutdown_grace = milliseconds(500)});
    pids.push_back(pipeline.fork_server_pid());
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (std::uint64_t id = 0; id < 6; ++id) co_await pipeline.push(make_frame(pool, id, kFrameBytes));
    }, asio::detached);
    io.run_for(milliseconds(30));
    for (const char* stage : {"detector", "size_estimator", "classifier", "aggregator"}) pids.push_back(pipeline.replica_pid(stage, 0));
  }
  EXPECT_TRUE(wait_gone(pids).empty());
  EXPECT_EQ(StageBoard::get().destroyed[kSizer], StageBoard::get().constructed[kSizer])
      << "the stage objects were destroyed within the grace";
  io.restart();
  io.poll();  // coroutine frames that still hold frames
  EXPECT_EQ(pool.stats().blocks_in_use, 0u);
  EXPECT_EQ(pool.stats().in_flight, 0u);
}

TEST_F(PipelineFailures, PushWaitsAtTheInFlightLimitSoThePoolHoldsAtMostThatManyFramesPlusOne) {
  constexpr std::size_t kBig = 1 << 20;
  constexpr std::size_t kLimit = 4;
  StageBoard::get().sleep_us[kAggregator] = 3'000;
  Diamond diamond;
  asio::io_context io;
  std::uint64_t peak = 0;
  std::vector<mpaio::PipelineResult<Summary>> results;
  {
    auto pipeline = diamond.graph.build(diamond.output, io.get_executor(), {.max_in_flight = kLimit});
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      for (std::uint64_t id = 0; id < 60; ++id) {
        mpaio_test::Frame frame = make_frame(pool, id, kBig);
        peak = std::max(peak, pool.stats().bytes_in_use);
        co_await pipeline.push(std::move(frame));
        EXPECT_LE(pipeline.in_flight(), kLimit);
      }
      pipeline.close();
    }, asio::detached);
    asio::co_spawn(io, pipeline.collect(results), asio::detached);
    io.run();
  }
  EXPECT_EQ(results.size(), 60u);
  EXPECT_LE(peak, (kLimit + 1) * kBig + (1u << 20)) << "bytes in use at most (max_in_flight + 1) frames + 1 MiB";
  EXPECT_GE(peak, kLimit * kBig) << "the limit was reached (the test measures something)";
}

}  // namespace
