// Results reach their callbacks as they land, not at the end of the run, and the caller's event loop stays
// free for other work while chunks run. Both are proved without timing assertions: chunks wait (with a
// bound, past which they return a sentinel that fails the test) for a flag that only the event loop writes.
// The flag array is the workers' input array itself: element 0 is the flag, the chunks are ranges of it.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/this_coro.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "mpaio/mpaio.hpp"
#include "support/engine.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::ArrayView;
using mpaio::DataIterator;
using mpaio::Range;
using mpaio::RunReport;
using mpaio::SharedArray;
using mpaio::WorkerOrchestrator;
using mpaio_test::ExecutorKind;
using mpaio_test::kGaveUp;

/// Chunk 0 returns at once; every other chunk waits until the flag (element 0) is set, which the callback
/// of chunk 0 does. If results were held back until the end of the run, the waiting chunks would give up.
struct GateWorker : mpaio::Worker<GateWorker, std::int32_t> {
  GateWorker(DataIterator chunks, SharedArray<std::int32_t>& flags) : Worker(std::move(chunks)), flags_(flags) {}

  static std::int32_t process(ArrayView<const std::int32_t> flags, Range chunk) {
    if (chunk.start == 0) return 0;
    return mpaio_test::wait_for_flag(flags.data(), [](std::int32_t v) { return v != 0; });
  }

  void process_callback(std::int32_t value, Range chunk) {
    if (chunk.start == 0) {
      delivered_before_first = delivered;
      mpaio_test::store_flag(&flags_[0], 1);
    }
    ++delivered;
    values.push_back(value);
  }

  SharedArray<std::int32_t>& flags_;
  std::size_t delivered = 0;
  std::size_t delivered_before_first = ~std::size_t{0};
  std::vector<std::int32_t> values;
};

/// Every chunk waits until the flag reaches kTicks, which only a coroutine of the caller's loop (the
/// ticker) can make happen, and returns the value it saw.
constexpr std::int32_t kTicks = 25;

struct TickWaitWorker : mpaio::Worker<TickWaitWorker, std::int32_t> {
  using Worker::Worker;
  static std::int32_t process(ArrayView<const std::int32_t> flags, Range) {
    return mpaio_test::wait_for_flag(flags.data(), [](std::int32_t v) { return v >= kTicks; });
  }
  void process_callback(std::int32_t value) { values.push_back(value); }
  std::vector<std::int32_t> values;
};

using Param = std::tuple<ExecutorKind, std::size_t, mpaio::SegmentKind>;

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  return std::string(mpaio_test::kind_name(std::get<0>(info.param))) + std::to_string(std::get<1>(info.param)) +
         (std::get<2>(info.param) == mpaio::SegmentKind::named ? "Named" : "Anonymous");
}

class Streaming : public ::testing::TestWithParam<Param> {
 protected:
  Streaming() : executor_(mpaio_test::make_executor(std::get<0>(GetParam()), std::get<1>(GetParam()))) {}
  SharedArray<std::int32_t> make_flags() { return SharedArray<std::int32_t>::create({64}, {.kind = std::get<2>(GetParam())}); }

  mpaio_test::Watchdog watchdog_{120};
  std::unique_ptr<mpaio::Executor> executor_;
};

TEST_P(Streaming, ResultsReachCallbacksAsTheyLand) {
  auto flags = make_flags();
  GateWorker worker{DataIterator::partitions(flags.meta(), 8), flags};
  WorkerOrchestrator orchestrator{*executor_, {&worker}};
  const RunReport report = orchestrator.run_blocking();
  EXPECT_EQ(report.chunks.size(), 8U);
  ASSERT_EQ(worker.values.size(), 8U);
  EXPECT_EQ(worker.delivered_before_first, 0U) << "chunk 0's result must be the first delivered";
  for (std::int32_t v : worker.values) {
    EXPECT_NE(v, kGaveUp) << "a chunk waited in vain: chunk 0's result was not delivered while the run went on";
  }
}

TEST_P(Streaming, TheLoopRunsOtherCoroutinesWhileChunksRun) {
  auto flags = make_flags();
  TickWaitWorker worker{DataIterator::partitions(flags.meta(), 6)};
  WorkerOrchestrator orchestrator{*executor_, {&worker}};
  asio::io_context io;
  bool run_done = false;
  std::exception_ptr run_error;
  std::int32_t ticks = 0;
  std::int32_t ticks_when_run_done = -1;
  // The ticker: another coroutine on the same loop, advancing the flag every millisecond until the run ends.
  auto ticker = [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!run_done) {
      timer.expires_after(std::chrono::milliseconds(1));
      co_await timer.async_wait(asio::use_awaitable);
      mpaio_test::store_flag(&flags[0], ++ticks);
    }
  };
  asio::co_spawn(io, ticker(), asio::detached);
  asio::co_spawn(io, orchestrator.run(), [&](std::exception_ptr e, RunReport) {
    run_error = e;
    run_done = true;
    ticks_when_run_done = ticks;
  });
  io.run();
  ASSERT_TRUE(run_done);
  ASSERT_FALSE(run_error);
  ASSERT_EQ(worker.values.size(), 6U);
  for (std::int32_t v : worker.values) {
    EXPECT_NE(v, kGaveUp) << "a chunk waited in vain: the ticker did not run while the run was in flight";
    EXPECT_GE(v, kTicks);
  }
  EXPECT_GE(ticks_when_run_done, kTicks);
}

// The inline executor runs chunks on the loop thread: the ticker cannot advance while one waits, so it is
// left out of the second test (it passes the first, since each callback runs before the next chunk).
INSTANTIATE_TEST_SUITE_P(
    Executors, Streaming,
    ::testing::Values(Param{ExecutorKind::thread, 1, mpaio::SegmentKind::anonymous},
                      Param{ExecutorKind::thread, 4, mpaio::SegmentKind::anonymous},
                      Param{ExecutorKind::process, 1, mpaio::SegmentKind::anonymous},
                      Param{ExecutorKind::process, 2, mpaio::SegmentKind::named},
                      Param{ExecutorKind::process, 4, mpaio::SegmentKind::anonymous}),
    param_name);

TEST(StreamingInline, ResultsReachCallbacksBeforeTheNextChunk) {
  mpaio_test::Watchdog watchdog(60);
  auto flags = SharedArray<std::int32_t>::create({64});
  mpaio::InlineExecutor executor;
  GateWorker worker{DataIterator::partitions(flags.meta(), 8), flags};
  WorkerOrchestrator orchestrator{executor, {&worker}};
  (void)orchestrator.run_blocking();
  ASSERT_EQ(worker.values.size(), 8U);
  for (std::int32_t v : worker.values) EXPECT_NE(v, kGaveUp);
  EXPECT_EQ(worker.delivered_before_first, 0U);
}

}  // namespace
