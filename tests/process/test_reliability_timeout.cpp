// Reliability: a chunk that never finishes. With chunk_timeout T and timeout_grace G it is reported as
// ChunkTimeout within T + G + 0.5 s of its start, and not before T; its worker gets SIGTERM first, no
// earlier than T (the chunk's SIGTERM handler notes the time on the board), and dies of it, or, when it
// ignores SIGTERM, of SIGKILL no earlier than T + G (a thread of the test sees the process end through its
// pidfd); the worker is replaced and the pool runs correctly afterwards. T and G differ, so that a message
// naming "300 ms" names the timeout. chunk_timeout needs an executor that can stop a chunk: with the inline
// and thread executors it is an InvalidArgument.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using namespace mpaio_test::rel;
using namespace std::chrono_literals;
using mpaio::DataIterator;
using mpaio::ErrorPolicy;
using mpaio::ProcessPoolExecutor;
using mpaio::WorkerOrchestrator;

constexpr std::size_t kSize = 40'000;
constexpr std::size_t kChunk = 10'000;  // 4 chunks
constexpr auto kTimeout = 300ms;
constexpr auto kGrace = 500ms;

struct HangCase : NamedCase {
  std::int64_t action;
  const char* signal_text;  ///< how the worker must have died
  bool ignores_sigterm;     ///< so only SIGKILL, after the grace, ends it
};

std::int64_t ns(std::chrono::milliseconds ms) { return std::chrono::nanoseconds(ms).count(); }

/// Expects the worker of a hung chunk that started at `started` to have got SIGTERM first, no earlier than
/// the timeout, and to have died of it, or (when it ignores SIGTERM) only after the grace as well.
void expect_sigterm_then_sigkill(const HangCase& param, Board& board, std::int64_t started, std::int64_t died) {
  const std::int64_t term = board.get(Cell::sigterm_ns);
  ASSERT_GT(term, 0) << "the worker never received SIGTERM";
  ASSERT_GT(died, 0) << "the worker's end was not seen";
  record_timing(std::string("SIGTERM after the chunk started (") + param.name + ")", ms_between(started, term));
  record_timing(std::string("worker gone after the chunk started (") + param.name + ")", ms_between(started, died));
  EXPECT_GE(term - started, ns(kTimeout)) << "SIGTERM before the chunk timeout";
  EXPECT_GT(died, term) << "the worker was gone before its SIGTERM";
  if (param.ignores_sigterm) {
    EXPECT_GE(died - started, ns(kTimeout + kGrace)) << "SIGKILL before the end of the grace period";
  } else {
    EXPECT_LT(died - started, ns(kTimeout + kGrace)) << "a worker that does not ignore SIGTERM dies of it";
  }
}

class reliability_HungChunk : public ReliabilityTest, public ::testing::WithParamInterface<HangCase> {};

TEST_P(reliability_HungChunk, IsAChunkTimeoutWithinTimeoutPlusGracePlusHalfASecond) {
  const HangCase param = GetParam();
  ScriptedPool scripted(kSize, kChunk, 2);
  auto& [board, pool, ints, before] = scripted;

  constexpr std::size_t kTarget = 2;
  board.set_action(kTarget, param.action);
  SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
  WorkerOrchestrator orchestrator{pool, {&sums}, {.chunk_timeout = kTimeout, .timeout_grace = kGrace}};
  DeathWatcher deaths(before);
  const RunOutcome out = run_outcome(orchestrator);

  const auto* timeout = out.error_as<mpaio::ChunkTimeout>();
  ASSERT_NE(timeout, nullptr);
  const std::int64_t started = board.start_ns_of(kTarget);
  ASSERT_GT(started, 0);
  const double ms = ms_between(started, out.end_ns);
  record_timing(std::string("timeout (") + param.name + ") reported after the chunk started", ms);
  const double bound = std::chrono::duration<double, std::milli>(kTimeout + kGrace + 500ms).count();
  EXPECT_LT(ms, bound)
      << "ChunkTimeout must come within T + G + 0.5 s of the chunk's start";
  EXPECT_GE(out.end_ns - started, ns(param.ignores_sigterm ? kTimeout + kGrace : kTimeout))
      << "ChunkTimeout before the worker could have been stopped";
  const pid_t hung = board.pid_of(kTarget);
  ASSERT_TRUE(poll_until([&] { return deaths.seen_ns(hung) != 0; }, 2000ms)) << "worker " << hung << " did not end";
  expect_sigterm_then_sigkill(param, board, started, deaths.seen_ns(hung));

  const std::string what = timeout->what();
  std::printf("[message] %s\n", what.c_str());
  EXPECT_NE(what.find(param.signal_text), std::string::npos) << what;
  EXPECT_NE(what.find("timeout of 300 ms"), std::string::npos) << what;
  expect_names_chunk(what, sums, sums.chunks()[kTarget], hung);
  EXPECT_EQ(timeout->range(), sums.chunks()[kTarget]);
  EXPECT_EQ(timeout->pid(), hung);

  // The hung worker is gone and replaced.
  expect_worker_replaced(pool, before, timeout->slot(), hung);
  board.reset();
  expect_healthy_run(pool, ints, kChunk);
}

TEST_P(reliability_HungChunk, CollectModeFinishesEveryOtherChunk) {
  const HangCase param = GetParam();
  ScriptedPool scripted(kSize, kChunk, 2);
  auto& [board, pool, ints, _] = scripted;

  board.set_action(1, param.action);
  SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
  WorkerOrchestrator orchestrator{
      pool, {&sums}, {.on_error = ErrorPolicy::collect, .chunk_timeout = kTimeout, .timeout_grace = kGrace}};
  DeathWatcher deaths(worker_pids(pool));
  const RunOutcome out = run_outcome(orchestrator);
  ASSERT_FALSE(out.error) << out.what();
  const pid_t hung = board.pid_of(1);
  ASSERT_TRUE(poll_until([&] { return deaths.seen_ns(hung) != 0; }, 2000ms)) << "worker " << hung << " did not end";
  expect_sigterm_then_sigkill(param, board, board.start_ns_of(1), deaths.seen_ns(hung));
  expect_sums(sums, {1});
  ASSERT_EQ(out.report->failures.size(), 1U);
  EXPECT_EQ(out.report->failures[0].range, sums.chunks()[1]);
  EXPECT_NE(out.report->failures[0].message.find(param.signal_text), std::string::npos)
      << out.report->failures[0].message;
  expect_failure_is<mpaio::ChunkTimeout>(out.report->failures[0]);
}

INSTANTIATE_TEST_SUITE_P(
    Hangs, reliability_HungChunk,
    ::testing::Values(
        HangCase{{"StoppedBySigterm"}, Action::hang, "killed by signal 15", false},
        HangCase{{"IgnoresSigtermKilledAfterGrace"}, Action::hang_ignore_term, "killed by signal 9", true}),
    case_name<HangCase>);

class reliability_TimeoutOption : public ReliabilityTest {};

TEST_F(reliability_TimeoutOption, IsAnInvalidArgumentWithExecutorsThatCannotStopAChunk) {
  auto ints = iota_array(1000);
  SumWorker sums{DataIterator::chunks(ints.meta(), 100)};
  mpaio::InlineExecutor inline_executor;
  mpaio::ThreadPoolExecutor threads{{.workers = 2}};
  EXPECT_THROW((WorkerOrchestrator{inline_executor, {&sums}, {.chunk_timeout = kTimeout}}), mpaio::InvalidArgument);
  EXPECT_THROW((WorkerOrchestrator{threads, {&sums}, {.chunk_timeout = kTimeout}}), mpaio::InvalidArgument);
  try {
    WorkerOrchestrator bad{threads, {&sums}, {.chunk_timeout = kTimeout}};
    ADD_FAILURE() << "no exception";
  } catch (const mpaio::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("chunk_timeout"), std::string::npos) << e.what();
  }
  // Without a timeout both run the same worker fine.
  WorkerOrchestrator fine{threads, {&sums}};
  EXPECT_NO_THROW(fine.run_blocking());
  expect_sums(sums);
}

}  // namespace
