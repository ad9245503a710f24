// Runs on one executor take turns. Issue 11 item 15: two runs started at the same time on one executor
// used to corrupt each other (a process pool reported a WorkerCrashed "killed by signal 9" for one and
// never completed the other; a thread pool delivered nothing to either, for ever). Now the second run waits,
// without blocking its loop, until the first ends: on one loop, on two loops run by two threads, and when
// the waiting run is cancelled or its loop destroyed the running one is left alone. Every test runs under
// a Watchdog, and every loop is run with a bound, so that a hang fails instead of blocking.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

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

/// The bound on any loop of these tests: a safety net against hangs, never a timing assertion.
constexpr std::chrono::seconds kHang{60};
constexpr std::size_t kSize = 20'000;
constexpr std::int64_t kSum = static_cast<std::int64_t>(kSize) * (kSize + 1) / 2;

SharedArray<std::int64_t> make_ints() {
  auto ints = SharedArray<std::int64_t>::create({kSize});
  std::iota(ints.begin(), ints.end(), 1);
  return ints;
}

/// Which run delivered each result, in the order they were delivered (from any thread).
class Timeline {
 public:
  void add(char run) {
    std::lock_guard lock(mutex_);
    events_.push_back(run);
  }
  [[nodiscard]] std::string events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  mutable std::mutex mutex_;
  std::string events_;
};

/// Sums its chunks, noting each delivery in a timeline; `on_delivery(n)` runs after the n-th result.
struct TurnSumWorker : mpaio::Worker<TurnSumWorker, std::int64_t> {
  TurnSumWorker(DataIterator chunks, Timeline& timeline, char tag)
      : Worker(std::move(chunks)), timeline_(timeline), tag_(tag) {}
  static std::int64_t process(ArrayView<const std::int64_t> data, Range chunk) {
    std::int64_t sum = 0;
    for (std::int64_t v : data.slice(chunk)) sum += v;
    return sum;
  }
  void process_callback(std::int64_t partial) {
    total += partial;
    timeline_.add(tag_);
    ++delivered;
    if (on_delivery) on_delivery(delivered);
  }
  Timeline& timeline_;
  char tag_;
  std::int64_t total = 0;
  std::size_t delivered = 0;
  std::function<void(std::size_t)> on_delivery;
};

/// Waits until element 0 of its array is set (by the test), then counts its chunk.
struct HeldWorker : mpaio::Worker<HeldWorker, std::int32_t> {
  HeldWorker(DataIterator chunks, Timeline& timeline) : Worker(std::move(chunks)), timeline_(timeline) {}
  static std::int32_t process(ArrayView<const std::int32_t> flags, Range) {
    return mpaio_test::wait_for_flag(flags.data(), [](std::int32_t v) { return v != 0; });
  }
  void process_callback(std::int32_t value) {
    if (value == mpaio_test::kGaveUp) ++gave_up;
    timeline_.add('A');
    ++delivered;
  }
  Timeline& timeline_;
  std::size_t delivered = 0;
  std::size_t gave_up = 0;
};

/// The outcome of a co_spawned run. `completed` may be read by the test's thread while the run's loop
/// runs on another (it is set last; the other fields are read after that thread is joined).
struct Outcome {
  std::atomic<bool> completed{false};
  std::exception_ptr error;
  RunReport report;

  auto handler() {
    return [this](std::exception_ptr e, RunReport r) {
      error = e;
      report = std::move(r);
      completed = true;
    };
  }
  [[nodiscard]] std::string error_text() const {
    if (!error) return "none";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "a non-std exception";
    }
  }
};

/// Expects `events` to hold every result of one run before every result of the other: the runs took turns.
void expect_turns(const std::string& events, char first, std::size_t first_count, char second, std::size_t second_count) {
  EXPECT_EQ(events, std::string(first_count, first) + std::string(second_count, second))
      << "the results of the two runs interleave: they did not take turns";
}

/// Ready once `io` has run the handlers posted before this call: a run co_spawned on `io` before it has
/// then taken the executor, or is waiting for its turn (its start is a handler posted by co_spawn, and
/// taking the executor completes at once or suspends in the wait).
std::future<void> after_start(asio::io_context& io) {
  auto reached = std::make_shared<std::promise<void>>();
  asio::post(io, [reached] { reached->set_value(); });
  return reached->get_future();
}

/// Two loops, each run by a thread of its own for at most kHang; joined on destruction.
struct TwoLoops {
  /// Starts `run` on loop A and returns once it holds the executor (or waits for it).
  template <class Handler>
  void start_first(asio::awaitable<RunReport> run, Handler handler) {
    start(io_a, thread_a, std::move(run), std::move(handler));
  }
  /// Starts `run` on loop B and returns once it holds the executor or waits for it. A handler posted to
  /// io_b afterwards runs after that.
  template <class Handler>
  void start_second(asio::awaitable<RunReport> run, Handler handler) {
    start(io_b, thread_b, std::move(run), std::move(handler));
  }
  void join() {
    if (thread_a.joinable()) thread_a.join();
    if (thread_b.joinable()) thread_b.join();
  }
  ~TwoLoops() { join(); }

  asio::io_context io_a;
  asio::io_context io_b;
  std::thread thread_a;
  std::thread thread_b;

 private:
  template <class Handler>
  static void start(asio::io_context& io, std::thread& thread, asio::awaitable<RunReport> run, Handler handler) {
    asio::co_spawn(io, std::move(run), std::move(handler));
    const auto started = after_start(io);
    thread = std::thread([&io] { io.run_for(kHang); });
    started.wait();
  }
};

/// Two runs on one executor: the first's 4 chunks wait until release_first(); the second sums 1..kSize in
/// `second_chunks` chunks.
struct HeldAndSum {
  HeldAndSum(mpaio::Executor& executor, std::size_t second_chunks)
      : first{DataIterator::partitions(flags.meta(), 4), timeline},
        second{DataIterator::partitions(ints.meta(), second_chunks), timeline, 'B'},
        orchestrator_a{executor, {&first}},
        orchestrator_b{executor, {&second}} {}
  void release_first() { mpaio_test::store_flag(&flags[0], 1); }

  SharedArray<std::int32_t> flags = SharedArray<std::int32_t>::create({16});
  SharedArray<std::int64_t> ints = make_ints();
  Timeline timeline;
  HeldWorker first;
  TurnSumWorker second;
  WorkerOrchestrator orchestrator_a;
  WorkerOrchestrator orchestrator_b;
  Outcome a;
  Outcome b;
};

class Turns : public ::testing::TestWithParam<ExecutorKind> {
 protected:
  Turns() : executor_(mpaio_test::make_executor(GetParam(), 2)) {}

  /// A third run on the executor after the others: it is free again, and correct.
  void expect_executor_free() {
    auto ints = make_ints();
    Timeline timeline;
    TurnSumWorker worker{DataIterator::partitions(ints.meta(), 8), timeline, 'C'};
    WorkerOrchestrator orchestrator{*executor_, {&worker}};
    (void)orchestrator.run_blocking();
    EXPECT_EQ(worker.total, kSum);
  }

  mpaio_test::Watchdog watchdog_{180};
  std::unique_ptr<mpaio::Executor> executor_;
};

TEST_P(Turns, TwoRunsOnOneLoopBothDeliverEverythingOneAfterTheOther) {
  // Issue 11 item 15: two co_spawned runs on one executor and one loop.
  auto ints = make_ints();
  Timeline timeline;
  TurnSumWorker first{DataIterator::partitions(ints.meta(), 20), timeline, 'A'};
  TurnSumWorker second{DataIterator::chunks(ints.meta(), 1000), timeline, 'B'};
  WorkerOrchestrator orchestrator_a{*executor_, {&first}};
  WorkerOrchestrator orchestrator_b{*executor_, {&second}};
  asio::io_context io;
  Outcome a;
  Outcome b;
  asio::co_spawn(io, orchestrator_a.run(), a.handler());
  asio::co_spawn(io, orchestrator_b.run(), b.handler());
  io.run_for(kHang);
  ASSERT_TRUE(a.completed && b.completed) << "a run never completed (hang)";
  EXPECT_FALSE(a.error) << a.error_text();
  EXPECT_FALSE(b.error) << b.error_text();
  EXPECT_EQ(first.total, kSum);
  EXPECT_EQ(second.total, kSum);
  EXPECT_EQ(a.report.chunks.size(), 20U);
  EXPECT_EQ(b.report.chunks.size(), 20U);
  expect_turns(timeline.events(), 'A', 20, 'B', 20);
  expect_executor_free();
}

TEST_P(Turns, RunsOnTwoLoopsOnTwoThreadsTakeTurns) {
  // Issue 11 item 15: the second run is started on another thread's loop while the first holds its
  // chunks; it waits, then runs on its own thread.
  HeldAndSum runs(*executor_, 10);
  std::atomic<bool> second_on_its_thread{true};
  const std::thread::id main_thread = std::this_thread::get_id();
  runs.second.on_delivery = [&](std::size_t) {
    if (std::this_thread::get_id() == main_thread) second_on_its_thread = false;
  };
  TwoLoops loops;
  loops.start_first(runs.orchestrator_a.run(), runs.a.handler());  // holds the executor until released
  loops.start_second(runs.orchestrator_b.run(), runs.b.handler());
  runs.release_first();
  loops.join();
  ASSERT_TRUE(runs.a.completed && runs.b.completed) << "a run never completed (hang)";
  EXPECT_FALSE(runs.a.error) << runs.a.error_text();
  EXPECT_FALSE(runs.b.error) << runs.b.error_text();
  EXPECT_EQ(runs.first.delivered, 4U);
  EXPECT_EQ(runs.first.gave_up, 0U);
  EXPECT_EQ(runs.second.total, kSum);
  EXPECT_TRUE(second_on_its_thread);
  expect_turns(runs.timeline.events(), 'A', 4, 'B', 10);
  expect_executor_free();
}

TEST_P(Turns, CancellingAWaitingRunThrowsRunCancelledAndLeavesTheRunningOneAlone) {
  // Issue 11 item 15: the second run is cancelled while it waits for the first.
  auto ints = make_ints();
  Timeline timeline;
  TurnSumWorker first{DataIterator::chunks(ints.meta(), 500), timeline, 'A'};
  TurnSumWorker second{DataIterator::partitions(ints.meta(), 4), timeline, 'B'};
  WorkerOrchestrator orchestrator_a{*executor_, {&first}};
  WorkerOrchestrator orchestrator_b{*executor_, {&second}};
  asio::io_context io;
  asio::cancellation_signal cancel_b;
  Outcome a;
  Outcome b;
  std::optional<bool> first_done_when_cancelled;
  // By the third result of the first run the second has long been started (and is waiting): cancel it.
  first.on_delivery = [&](std::size_t n) {
    if (n != 3) return;
    cancel_b.emit(asio::cancellation_type::terminal);
    first_done_when_cancelled = a.completed;
  };
  asio::co_spawn(io, orchestrator_a.run(), a.handler());
  asio::co_spawn(io, orchestrator_b.run(), asio::bind_cancellation_slot(cancel_b.slot(), b.handler()));
  io.run_for(kHang);
  ASSERT_TRUE(a.completed && b.completed) << "a run never completed (hang)";
  EXPECT_EQ(first_done_when_cancelled, std::optional<bool>(false));
  EXPECT_FALSE(a.error) << a.error_text();
  EXPECT_EQ(first.total, kSum) << "the running run lost results when the waiting one was cancelled";
  EXPECT_EQ(first.delivered, 40U);
  ASSERT_TRUE(b.error) << "the cancelled run completed normally";
  try {
    std::rethrow_exception(b.error);
  } catch (const mpaio::RunCancelled& e) {
    EXPECT_NE(std::string(e.what()).find("waiting"), std::string::npos) << e.what();
  } catch (...) {
    ADD_FAILURE() << "the cancelled run threw " << b.error_text() << ", not RunCancelled";
  }
  EXPECT_EQ(second.delivered, 0U);
  EXPECT_EQ(orchestrator_b.last_report().chunks.size(), 0U);
  expect_executor_free();
}

TEST_P(Turns, CancellingAWaitingRunOnAnotherThreadLeavesTheRunningOneAlone) {
  // Issue 11 item 15: the waiting run is on another thread's loop; it is cancelled there.
  HeldAndSum runs(*executor_, 4);
  asio::cancellation_signal cancel_b;
  TwoLoops loops;
  loops.start_first(runs.orchestrator_a.run(), runs.a.handler());
  loops.start_second(runs.orchestrator_b.run(), asio::bind_cancellation_slot(cancel_b.slot(), runs.b.handler()));
  asio::post(loops.io_b, [&] { cancel_b.emit(asio::cancellation_type::terminal); });
  loops.thread_b.join();  // the cancelled run ends while the first still holds its chunks
  EXPECT_FALSE(runs.a.completed);
  runs.release_first();
  loops.join();
  ASSERT_TRUE(runs.a.completed && runs.b.completed) << "a run never completed (hang)";
  EXPECT_FALSE(runs.a.error) << runs.a.error_text();
  EXPECT_EQ(runs.first.delivered, 4U);
  EXPECT_EQ(runs.first.gave_up, 0U);
  ASSERT_TRUE(runs.b.error) << "the cancelled run completed normally";
  EXPECT_NE(runs.b.error_text().find("cancelled"), std::string::npos) << runs.b.error_text();
  EXPECT_EQ(runs.second.delivered, 0U);
  expect_executor_free();
}

TEST_P(Turns, DestroyingTheLoopOfAWaitingRunTakesItOutOfTheQueue) {
  // Issue 11 item 15: a waiting run whose loop is destroyed gives up its turn; the running one and the
  // runs after it are not disturbed.
  auto ints = make_ints();
  Timeline timeline;
  TurnSumWorker first{DataIterator::chunks(ints.meta(), 10), timeline, 'A'};  // more than a batch of results
  TurnSumWorker second{DataIterator::partitions(ints.meta(), 4), timeline, 'B'};
  WorkerOrchestrator orchestrator_a{*executor_, {&first}};
  WorkerOrchestrator orchestrator_b{*executor_, {&second}};
  asio::io_context io_a;
  Outcome a;
  Outcome b;
  first.on_delivery = [&](std::size_t n) {
    if (n == 1) io_a.stop();  // the first run holds the executor, suspended
  };
  asio::co_spawn(io_a, orchestrator_a.run(), a.handler());
  (void)io_a.run_for(kHang);
  ASSERT_FALSE(a.completed);
  {
    asio::io_context io_b;
    asio::co_spawn(io_b, orchestrator_b.run(), b.handler());
    (void)io_b.poll();  // the second waits for its turn
  }  // its loop, and with it the waiting run, is destroyed
  io_a.restart();
  io_a.run_for(kHang);
  ASSERT_TRUE(a.completed) << "the running run never completed (hang)";
  EXPECT_FALSE(b.completed);
  EXPECT_FALSE(a.error) << a.error_text();
  EXPECT_EQ(first.total, kSum);
  EXPECT_EQ(second.delivered, 0U);
  expect_executor_free();
}

TEST_P(Turns, RunBlockingFromACallbackOfARunOnTheSameExecutorThrowsInsteadOfWaitingForEver) {
  // Issue 11 item 15: the nested run would wait for a run that only its own thread can finish.
  auto ints = make_ints();
  Timeline timeline;
  TurnSumWorker outer{DataIterator::partitions(ints.meta(), 4), timeline, 'A'};
  TurnSumWorker inner{DataIterator::partitions(ints.meta(), 2), timeline, 'B'};
  WorkerOrchestrator orchestrator_inner{*executor_, {&inner}};
  std::string nested_error;
  outer.on_delivery = [&](std::size_t n) {
    if (n != 1) return;
    try {
      (void)orchestrator_inner.run_blocking();
      nested_error = "none";
    } catch (const mpaio::InvalidArgument& e) {
      nested_error = e.what();
    }
  };
  WorkerOrchestrator orchestrator_outer{*executor_, {&outer}};
  (void)orchestrator_outer.run_blocking();
  EXPECT_EQ(outer.total, kSum);
  EXPECT_NE(nested_error.find("run_blocking"), std::string::npos) << nested_error;
  EXPECT_NE(nested_error.find("this thread"), std::string::npos) << nested_error;
  EXPECT_EQ(inner.delivered, 0U);
  expect_executor_free();
}

INSTANTIATE_TEST_SUITE_P(Executors, Turns,
                         ::testing::Values(ExecutorKind::inline_, ExecutorKind::thread, ExecutorKind::process),
                         [](const ::testing::TestParamInfo<ExecutorKind>& info) {
                           return std::string(mpaio_test::kind_name(info.param));
                         });

}  // namespace
