// Reliability: an exception thrown by `process` in a worker process (std::runtime_error, a std::exception
// subclass of the user's, something not derived from std::exception) becomes a ChunkError naming its type
// and message; the worker survives (an exception is not a crash) and the pool's next run is correct.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "support/reliability.hpp"

namespace {

using namespace mpaio_test::rel;
using mpaio::DataIterator;
using mpaio::ErrorPolicy;
using mpaio::ProcessPoolExecutor;
using mpaio::WorkerOrchestrator;

constexpr std::size_t kSize = 60'000;
constexpr std::size_t kChunk = 10'000;  // 6 chunks

struct ThrowCase : NamedCase {
  std::int64_t action;
  const char* type;     ///< what the error's cause_type must contain
  std::string message;  ///< what the error's cause must contain
};

class reliability_ChunkException : public ReliabilityTest, public ::testing::WithParamInterface<ThrowCase> {};

TEST_P(reliability_ChunkException, IsAChunkErrorWithTypeAndMessageAndThePoolStaysHealthy) {
  const ThrowCase param = GetParam();
  ScriptedPool scripted(kSize, kChunk, 2);
  auto& [board, pool, ints, before] = scripted;

  constexpr std::size_t kTarget = 4;
  board.set_action(kTarget, param.action);
  SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
  WorkerOrchestrator orchestrator{pool, {&sums}};
  const RunOutcome out = run_outcome(orchestrator);

  const auto* error = out.error_as<mpaio::ChunkError>();
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(dynamic_cast<const mpaio::WorkerCrashed*>(error), nullptr) << "an exception is not a crash";
  EXPECT_EQ(dynamic_cast<const mpaio::ChunkTimeout*>(error), nullptr);
  EXPECT_NE(error->cause_type().find(param.type), std::string::npos) << error->cause_type();
  EXPECT_NE(error->cause().find(param.message), std::string::npos) << error->cause();
  const std::string what = error->what();
  std::printf("[message] %s\n", what.c_str());
  EXPECT_NE(what.find(param.type), std::string::npos) << what;
  EXPECT_NE(what.find(param.message), std::string::npos) << what;
  expect_names_chunk(what, sums, sums.chunks()[kTarget], board.pid_of(kTarget));
  EXPECT_EQ(error->range(), sums.chunks()[kTarget]);
  EXPECT_EQ(error->pid(), board.pid_of(kTarget));

  // No worker died: the same processes run the next run, correctly.
  EXPECT_EQ(worker_pids(pool), before);
  board.reset();
  expect_healthy_run(pool, ints, kChunk);
  EXPECT_EQ(worker_pids(pool), before);
}

TEST_P(reliability_ChunkException, CollectModeKeepsTheOtherResults) {
  const ThrowCase param = GetParam();
  ScriptedPool scripted(kSize, kChunk, 2);
  auto& [board, pool, ints, _] = scripted;

  board.set_action(0, param.action);
  board.set_action(5, param.action);
  SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
  WorkerOrchestrator orchestrator{pool, {&sums}, {.on_error = ErrorPolicy::collect}};
  const RunOutcome out = run_outcome(orchestrator);
  ASSERT_FALSE(out.error) << out.what();
  expect_sums(sums, {0, 5});
  ASSERT_EQ(out.report->failures.size(), 2U);
  for (const auto& f : out.report->failures) {
    EXPECT_NE(f.message.find(param.type), std::string::npos) << f.message;
    EXPECT_TRUE(f.range == sums.chunks()[0] || f.range == sums.chunks()[5]) << f.range;
    expect_failure_is<mpaio::ChunkError>(f);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Throws, reliability_ChunkException,
    ::testing::Values(ThrowCase{{"RuntimeError"}, Action::throw_runtime, "std::runtime_error", "runtime failure in chunk"},
                      ThrowCase{{"CustomException"}, Action::throw_custom, "CustomFailure", "custom failure in chunk"},
                      ThrowCase{{"NotStdException"}, Action::throw_non_std, "NotStdError",
                                "not derived from std::exception"}),
    case_name<ThrowCase>);

}  // namespace
