// Reliability: a worker process that dies while it runs a chunk (SIGKILL from outside, SIGSEGV, abort(),
// _exit(42)). The run fails fast with WorkerCrashed within 1 s of the death, naming the worker type, the
// chunk, the pid and the signal or exit code; the pool replaces the worker; in collect mode every other
// chunk is right and the report lists exactly the crashed chunks; with retries a chunk whose first attempt
// crashes succeeds on the second.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <ostream>
#include <set>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using namespace mpaio_test::rel;
using mpaio::DataIterator;
using mpaio::ErrorPolicy;
using mpaio::ProcessPoolExecutor;
using mpaio::WorkerOrchestrator;

constexpr std::size_t kSize = 80'000;
constexpr std::size_t kChunk = 10'000;  // 8 chunks

/// How the worker dies.
enum class Death { sigkill, segv, abort_, exit42 };

struct DeathCase {
  Death death;
  std::size_t workers;
};

const char* death_name(Death d) {
  switch (d) {
    case Death::sigkill: return "SigkillFromOutside";
    case Death::segv: return "Segv";
    case Death::abort_: return "Abort";
    case Death::exit42: return "Exit42";
  }
  return "?";
}

/// Readable parameters in test names ("GetParam() = Segv, 1 worker(s)") instead of the bytes of the struct.
void PrintTo(const DeathCase& c, std::ostream* os) { *os << death_name(c.death) << ", " << c.workers << " worker(s)"; }

std::string case_name(const ::testing::TestParamInfo<DeathCase>& info) {
  return std::string(death_name(info.param.death)) + "_" + std::to_string(info.param.workers) + "Workers";
}

/// The board action that makes a chunk die this way (SIGKILL: the chunk waits and the test kills it).
std::int64_t action_for(Death d) {
  switch (d) {
    case Death::sigkill: return Action::wait;
    case Death::segv: return Action::segv;
    case Death::abort_: return Action::abort_;
    case Death::exit42: return Action::exit42;
  }
  return Action::compute;
}

/// What the error message must say about the death.
std::string cause_text(Death d) {
  switch (d) {
    case Death::sigkill: return "killed by signal 9";
    case Death::segv: return "killed by signal 11";
    case Death::abort_: return "killed by signal 6";
    case Death::exit42: return "exited with code 42";
  }
  return "?";
}

/// Kills, from a thread of the test, the worker that runs each of `chunks` as soon as it starts (the pid
/// must be one of `pool_pids`, the pool's workers when the run started); records when it killed. With no
/// chunks (deaths the chunk causes itself) it does nothing.
class Killer {
 public:
  Killer(Board& board, std::vector<std::size_t> chunks, std::vector<pid_t> pool_pids) {
    if (chunks.empty()) return;
    thread_ = std::thread([this, &board, chunks = std::move(chunks), pool_pids = std::move(pool_pids)] {
      for (std::size_t chunk : chunks) {
        const pid_t pid = board.wait_started(chunk);
        if (pid <= 0) {
          error = "chunk " + std::to_string(chunk) + " never started";
          return;
        }
        // The first victim is one of the pool's workers as the run found them; later ones may be
        // replacements.
        if (kill_ns.empty() && std::find(pool_pids.begin(), pool_pids.end(), pid) == pool_pids.end()) {
          error = "chunk ran in pid " + std::to_string(pid) + ", not one of the pool's workers";
        }
        kill_ns.push_back(now_ns());
        killed.push_back(pid);
        ::kill(pid, SIGKILL);
      }
    });
  }
  ~Killer() { join(); }
  Killer(const Killer&) = delete;
  Killer& operator=(const Killer&) = delete;
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  std::vector<std::int64_t> kill_ns;
  std::vector<pid_t> killed;
  std::string error;

 private:
  std::thread thread_;
};

/// The chunks the test must kill from outside: `targets` for a SIGKILL case, none for the others.
std::vector<std::size_t> kill_from_outside(Death d, const std::set<std::size_t>& targets) {
  if (d != Death::sigkill) return {};
  return {targets.begin(), targets.end()};
}

class reliability_WorkerDeath : public ReliabilityTest, public ::testing::WithParamInterface<DeathCase> {};

TEST_P(reliability_WorkerDeath, FailFastReportsWorkerCrashedWithinOneSecondAndReplacesTheWorker) {
  const DeathCase param = GetParam();
  ScriptedPool scripted(kSize, kChunk, param.workers);
  auto& [board, pool, ints, before] = scripted;

  constexpr std::size_t kTarget = 3;
  board.set_action(kTarget, action_for(param.death));
  SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
  WorkerOrchestrator orchestrator{pool, {&sums}};
  Killer killer(board, kill_from_outside(param.death, {kTarget}), before);
  const RunOutcome out = run_outcome(orchestrator);
  killer.join();
  EXPECT_EQ(killer.error, "");

  const auto* crashed = out.error_as<mpaio::WorkerCrashed>();
  ASSERT_NE(crashed, nullptr);
  const pid_t dead = board.pid_of(kTarget);
  const std::int64_t death_ns = param.death == Death::sigkill ? killer.kill_ns.at(0) : board.get(Cell::death_ns);
  ASSERT_GT(death_ns, 0);
  const double ms = ms_between(death_ns, out.end_ns);
  record_timing(std::string("crash (") + death_name(param.death) + ") reported after the death", ms);
  EXPECT_LT(ms, 1000.0) << "WorkerCrashed must come within 1 s of the worker's death";

  // The message names the worker type, the chunk, the pid and the cause.
  const std::string what = crashed->what();
  std::printf("[message] %s\n", what.c_str());
  const mpaio::Range target = sums.chunks()[kTarget];
  expect_names_chunk(what, sums, target, dead);
  EXPECT_NE(what.find(cause_text(param.death)), std::string::npos) << what;
  EXPECT_EQ(crashed->worker_type(), sums.type_name());
  EXPECT_EQ(crashed->range(), target);
  EXPECT_EQ(crashed->pid(), dead);
  EXPECT_NE(std::find(before.begin(), before.end(), dead), before.end()) << "the chunk ran in one of the pool's workers";

  // The report of the failed run accounts for every chunk: delivered, the crashed one, or never run.
  const std::set<std::size_t> failed = expect_accounted(sums, orchestrator.last_report());
  EXPECT_EQ(failed, std::set<std::size_t>{kTarget});

  // The dead worker is gone and its slot has a new, live process.
  expect_worker_replaced(pool, before, crashed->slot(), dead);

  // And the pool runs correctly afterwards.
  board.reset();
  expect_healthy_run(pool, ints, kChunk);
}

TEST_P(reliability_WorkerDeath, CollectModeKeepsEveryOtherResultAndListsExactlyTheCrashedChunks) {
  const DeathCase param = GetParam();
  ScriptedPool scripted(kSize, kChunk, param.workers);
  auto& [board, pool, ints, before] = scripted;

  const std::set<std::size_t> targets{1, 6};
  for (std::size_t t : targets) board.set_action(t, action_for(param.death));
  SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
  WorkerOrchestrator orchestrator{pool, {&sums}, {.on_error = ErrorPolicy::collect}};
  Killer killer(board, kill_from_outside(param.death, targets), before);
  const RunOutcome out = run_outcome(orchestrator);
  killer.join();
  EXPECT_EQ(killer.error, "");

  ASSERT_FALSE(out.error) << "collect mode must not throw: " << out.what();
  const mpaio::RunReport& report = *out.report;
  expect_sums(sums, targets);
  ASSERT_EQ(report.failures.size(), targets.size());
  std::set<std::size_t> failed_chunks;
  for (const auto& f : report.failures) {
    const std::size_t index = f.range.start / kChunk;
    failed_chunks.insert(index);
    EXPECT_EQ(f.worker, 0U);
    EXPECT_EQ(f.range, sums.chunks()[index]);
    // Like a fail-fast error: the worker type, the chunk, the slot and pid of the worker that died, the cause.
    const pid_t dead = board.pid_of(index);
    std::optional<std::uint32_t> slot;
    try {
      std::rethrow_exception(f.error);
    } catch (const mpaio::ChunkError& e) {
      EXPECT_EQ(e.pid(), dead) << f.message;
      EXPECT_LT(e.slot(), pool.concurrency()) << f.message;
      slot = e.slot();
    } catch (...) {  // expect_failure_is below says what it is instead
    }
    expect_names_chunk(f.message, sums, f.range, dead, slot);
    EXPECT_NE(f.message.find(cause_text(param.death)), std::string::npos) << f.message;
    expect_failure_is<mpaio::WorkerCrashed>(f);
  }
  EXPECT_EQ(failed_chunks, targets);
  const auto failed_records = std::count_if(report.chunks.begin(), report.chunks.end(), [](const auto& c) { return c.failed; });
  EXPECT_EQ(failed_records, static_cast<long>(targets.size()));

  // Each crashed worker was replaced.
  for (std::size_t t : targets) EXPECT_TRUE(process_gone(board.pid_of(t)));
  const std::vector<pid_t> after = worker_pids(pool);
  for (pid_t p : after) EXPECT_FALSE(process_gone(p)) << "pool worker " << p << " is not alive";
  board.reset();
  expect_healthy_run(pool, ints, kChunk);
}

TEST_P(reliability_WorkerDeath, WithOneRetryACrashedFirstAttemptIsRunAgainAndTheRunIsCorrect) {
  const DeathCase param = GetParam();
  ScriptedPool scripted(kSize, kChunk, param.workers);
  auto& [board, pool, ints, before] = scripted;

  constexpr std::size_t kTarget = 5;
  board.set_action(kTarget, action_for(param.death) + Action::first_attempt_only);
  SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
  WorkerOrchestrator orchestrator{pool, {&sums}, {.retries = 1}};
  Killer killer(board, kill_from_outside(param.death, {kTarget}), before);
  const RunOutcome out = run_outcome(orchestrator);
  killer.join();
  EXPECT_EQ(killer.error, "");

  ASSERT_FALSE(out.error) << "the retry should have succeeded: " << out.what();
  expect_sums(sums);
  EXPECT_EQ(board.attempts(kTarget), 2);
  EXPECT_EQ(sums.deliveries, sums.chunks().size()) << "one delivery per chunk, none for the failed attempt";
  const auto& chunks = out.report->chunks;
  EXPECT_EQ(chunks.size(), sums.chunks().size() + 1) << "one record per attempt";
  std::vector<pid_t> failed_pids;
  for (const auto& c : chunks) {
    if (c.failed) {
      EXPECT_EQ(c.range, sums.chunks()[kTarget]);
      failed_pids.push_back(c.pid);
    }
  }
  ASSERT_EQ(failed_pids.size(), 1U);
  EXPECT_TRUE(process_gone(failed_pids[0]));
  EXPECT_TRUE(out.report->failures.empty());
}

INSTANTIATE_TEST_SUITE_P(Deaths, reliability_WorkerDeath,
                         ::testing::Values(DeathCase{Death::sigkill, 1}, DeathCase{Death::sigkill, 3},
                                           DeathCase{Death::segv, 1}, DeathCase{Death::segv, 3},
                                           DeathCase{Death::abort_, 2}, DeathCase{Death::exit42, 2}),
                         case_name);

}  // namespace
