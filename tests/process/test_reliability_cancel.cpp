// Reliability: cancelling run() through Asio while every worker is busy. With a cancellation_signal bound
// to co_spawn, run() completes with RunCancelled within 500 ms; with `run() || timer` (Asio's awaitable
// operators) the timer wins within 500 ms of its expiry. Either way the chunks in flight are stopped (the
// processes that ran them are gone) and the pool runs correctly afterwards.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using namespace mpaio_test::rel;
using namespace std::chrono_literals;
using mpaio::DataIterator;
using mpaio::ProcessPoolExecutor;
using mpaio::WorkerOrchestrator;

constexpr std::size_t kSize = 100'000;
constexpr std::size_t kChunk = 5'000;  // 20 chunks, so that chunks are queued behind the running ones

/// The pids that run a chunk right now, from the board.
std::vector<pid_t> busy_pids(Board& board, std::size_t chunks) {
  std::vector<pid_t> out;
  for (std::size_t i = 0; i < chunks; ++i) {
    if (board.pid_of(i) > 0) out.push_back(board.pid_of(i));
  }
  return out;
}

class reliability_Cancellation : public ReliabilityTest, public ::testing::WithParamInterface<std::size_t> {};

TEST_P(reliability_Cancellation, ThroughACancellationSignalGivesRunCancelledWithin500msAndStopsTheChunks) {
  const std::size_t workers = GetParam();
  ScriptedPool scripted(kSize, kChunk, workers);
  auto& [board, pool, ints, _] = scripted;
  board.set(Cell::default_action, Action::wait);  // every chunk waits until released (never, here)
  SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
  WorkerOrchestrator orchestrator{pool, {&sums}};

  asio::io_context io;
  asio::cancellation_signal cancel;
  std::exception_ptr error;
  bool completed = false;
  std::int64_t cancel_ns = 0;
  std::int64_t done_ns = 0;
  asio::co_spawn(io, orchestrator.run(),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, mpaio::RunReport) {
                   done_ns = now_ns();
                   completed = true;
                   error = e;
                 }));
  // On the loop: once every worker runs a chunk, cancel.
  asio::steady_timer poll(io);
  poll_on_loop(poll, [&] {
    if (completed) return true;
    if (board.get(Cell::running) != static_cast<std::int64_t>(workers)) return false;
    cancel_ns = now_ns();
    cancel.emit(asio::cancellation_type::terminal);
    return true;
  });
  io.run();

  ASSERT_TRUE(completed);
  ASSERT_GT(cancel_ns, 0) << "the workers never all became busy";
  const std::vector<pid_t> stopped = busy_pids(board, sums.chunks().size());
  ASSERT_EQ(stopped.size(), workers) << "one chunk started per worker before the cancellation";
  try {
    ASSERT_TRUE(error) << "the run completed normally";
    std::rethrow_exception(error);
  } catch (const mpaio::RunCancelled& e) {
    EXPECT_NE(std::string(e.what()).find("cancelled"), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    FAIL() << "expected RunCancelled, got: " << e.what();
  }
  const double ms = ms_between(cancel_ns, done_ns);
  record_timing("cancellation signal to RunCancelled, " + std::to_string(workers) + " busy workers", ms);
  EXPECT_LT(ms, 500.0);

  // The chunks in flight were stopped: the processes that ran them were killed (SIGKILL, without the loop
  // waiting for them to go) and are gone at once, not after the 30 s the chunks would have waited.
  const auto left = wait_gone(stopped, 1000ms);
  EXPECT_TRUE(left.empty()) << "still running: " << describe_pids(left);
  EXPECT_EQ(sums.deliveries, 0U);
  // Every chunk is unfinished: the ones stopped in flight and the ones never dispatched.
  (void)expect_accounted(sums, orchestrator.last_report());
  EXPECT_EQ(orchestrator.last_report().unfinished, sums.chunks().size());

  board.reset();
  expect_healthy_run(pool, ints, kChunk);
  for (pid_t p : worker_pids(pool)) {
    EXPECT_TRUE(std::find(stopped.begin(), stopped.end(), p) == stopped.end()) << "pid " << p << " was stopped";
    EXPECT_FALSE(process_gone(p));
  }
}

TEST_P(reliability_Cancellation, ByAwaitableOperatorOrWithATimerStopsTheRunWithin500msOfTheTimer) {
  using namespace asio::experimental::awaitable_operators;
  const std::size_t workers = GetParam();
  ScriptedPool scripted(kSize, kChunk, workers);
  auto& [board, pool, ints, _] = scripted;
  board.set(Cell::default_action, Action::wait);
  SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
  WorkerOrchestrator orchestrator{pool, {&sums}};

  asio::io_context io;
  std::optional<std::size_t> winner;
  std::exception_ptr error;
  std::int64_t timer_ns = 0;
  std::int64_t done_ns = 0;
  constexpr auto kAfter = 400ms;  // long enough for every worker to start a chunk
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        timer.expires_after(kAfter);
        auto expiry = [&]() -> asio::awaitable<void> {
          co_await timer.async_wait(asio::use_awaitable);
          timer_ns = now_ns();
        };
        std::variant<mpaio::RunReport, std::monostate> result = co_await (orchestrator.run() || expiry());
        done_ns = now_ns();
        winner = result.index();
      },
      [&](std::exception_ptr e) {
        if (!done_ns) done_ns = now_ns();
        error = e;
      });
  io.run();

  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      FAIL() << "the || expression threw: " << e.what();
    }
  }
  ASSERT_TRUE(winner.has_value());
  EXPECT_EQ(*winner, 1U) << "the timer should win: the chunks wait forever";
  ASSERT_GT(timer_ns, 0);
  const double ms = ms_between(timer_ns, done_ns);
  record_timing("timer expiry to the end of run() || timer, " + std::to_string(workers) + " busy workers", ms);
  EXPECT_LT(ms, 500.0);

  const std::vector<pid_t> stopped = busy_pids(board, sums.chunks().size());
  EXPECT_EQ(stopped.size(), workers) << "one chunk started per worker before the timer";
  const auto left = wait_gone(stopped, 1000ms);
  EXPECT_TRUE(left.empty()) << "still running: " << describe_pids(left);
  EXPECT_EQ(sums.deliveries, 0U);

  board.reset();
  expect_healthy_run(pool, ints, kChunk);
}

INSTANTIATE_TEST_SUITE_P(Workers, reliability_Cancellation, ::testing::Values(1U, 3U),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return std::to_string(info.param) + "Workers";
                         });

}  // namespace
