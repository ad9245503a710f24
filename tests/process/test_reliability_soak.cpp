// Reliability: a soak. Thousands of runs on one process pool, most of them clean, the others with a crash
// (fail-fast or collect), an exception, a hung chunk stopped by its timeout, or a cancellation at a random
// moment, in a seeded random order. Every run ends (the watchdog would say otherwise); every chunk is
// delivered at most once and with the right sum; in collect mode delivered + failed = submitted, and the
// failures are exactly the chunks scripted to fail, with the right error type; and at the end the open
// fds, the child processes and the /dev/shm entries are back at their starting counts.
//
// The CI version runs 10,000 runs (2,000 under a sanitizer, which slows every dispatch several times) and
// stays under 2 minutes. A longer one on demand:
//   MPAIO_SOAK_RUNS=100000 MPAIO_SOAK_SEED=7 build/release/tests/test_reliability_soak
#include <dirent.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using namespace mpaio_test::rel;
using namespace std::chrono_literals;
using mpaio::DataIterator;
using mpaio::ErrorPolicy;
using mpaio::WorkerOrchestrator;

constexpr std::size_t kChunk = 1'000;
constexpr std::size_t kChunks = 8;
constexpr std::size_t kWorkers = 2;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::size_t kDefaultRuns = 2'000;
#else
constexpr std::size_t kDefaultRuns = 10'000;
#endif

std::size_t env_or(const char* name, std::size_t fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 10) : fallback;
}

/// How many fds this process has open.
std::size_t open_fds() {
  std::size_t n = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  while (const dirent* entry = ::readdir(dir)) n += entry->d_name[0] != '.';
  ::closedir(dir);
  return n - 1;  // the directory's own fd
}

/// What a run is scripted to do.
enum class Plan { clean, crash_collect, crash_fail_fast, throw_collect, hang_collect, cancel };

/// The runs of each outcome, and the chunks.
struct Tally {
  std::size_t runs = 0, completed = 0, failed = 0, cancelled = 0;
  std::size_t chunks = 0, chunks_delivered = 0, chunks_failed = 0, chunks_cancelled = 0;
};

/// Runs `orchestrator` on an io_context; with `cancel_after`, cancels it (terminal) once that has passed.
RunOutcome run_on_loop(WorkerOrchestrator& orchestrator, std::optional<std::chrono::microseconds> cancel_after) {
  asio::io_context io;
  asio::cancellation_signal cancel;
  asio::steady_timer timer(io);
  RunOutcome out;
  bool done = false;
  asio::co_spawn(io, orchestrator.run(),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, mpaio::RunReport report) {
                   done = true;
                   out.end_ns = now_ns();
                   if (e) {
                     out.error = e;
                   } else {
                     out.report = std::move(report);
                   }
                   timer.cancel();
                 }));
  if (cancel_after) {
    timer.expires_after(*cancel_after);
    timer.async_wait([&](const std::error_code& ec) {
      if (!ec && !done) cancel.emit(asio::cancellation_type::terminal);
    });
  }
  io.run();
  return out;
}

/// The crash actions, one picked at random per crashing chunk.
constexpr std::int64_t kCrashes[] = {Action::segv, Action::abort_, Action::exit42, Action::kill_self};
constexpr std::int64_t kThrows[] = {Action::throw_runtime, Action::throw_custom, Action::throw_non_std};

class reliability_Soak : public ReliabilityTest {
 protected:
  reliability_Soak() : ReliabilityTest(std::chrono::seconds(60 + env_or("MPAIO_SOAK_RUNS", kDefaultRuns) / 50)) {}
};

TEST_F(reliability_Soak, EveryRunOfAMixOfCrashesTimeoutsAndCancellationsIsAccountedForAndNothingLeaks) {
  const std::size_t runs = env_or("MPAIO_SOAK_RUNS", kDefaultRuns);
  const std::size_t seed = env_or("MPAIO_SOAK_SEED", 20'261'122);
  std::printf("[soak] %zu runs, seed %zu (MPAIO_SOAK_RUNS, MPAIO_SOAK_SEED)\n", runs, seed);
  std::mt19937_64 rng(seed);
  auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };

  const std::size_t fds_at_start = open_fds();
  const std::vector<pid_t> children_at_start = children_of(::getpid());
  const std::size_t shm_at_start = shm_entries_of(::getpid()).size();
  Tally tally;
  const std::int64_t started = now_ns();
  {
    ScriptedPool scripted(kChunk * kChunks, kChunk, kWorkers);
    auto& [board, pool, ints, _] = scripted;
    expect_healthy_run(pool, ints, kChunk);  // warm: every worker has mapped the array
    const std::size_t fds_with_pool = open_fds();
    const std::vector<pid_t> children_with_pool = children_of(::getpid());

    for (std::size_t run = 0; run < runs && !HasFailure(); ++run) {
      board.reset();
      const std::size_t roll = pick(100);
      const Plan plan = roll < 70   ? Plan::clean
                        : roll < 80 ? Plan::crash_collect
                        : roll < 85 ? Plan::crash_fail_fast
                        : roll < 90 ? Plan::throw_collect
                        : roll < 91 ? Plan::hang_collect
                                    : Plan::cancel;
      mpaio::OrchestratorOptions options;
      options.on_error = plan == Plan::crash_fail_fast || (plan == Plan::clean && pick(2) == 0) ? ErrorPolicy::fail_fast
                                                                                                 : ErrorPolicy::collect;
      std::set<std::size_t> failing;  // the chunks scripted to fail
      std::optional<std::chrono::microseconds> cancel_after;
      bool must_cancel = false;
      switch (plan) {
        case Plan::clean: break;
        case Plan::crash_collect:
        case Plan::crash_fail_fast:
          failing.insert(pick(kChunks));
          if (plan == Plan::crash_collect && pick(3) == 0) failing.insert(pick(kChunks));
          for (std::size_t c : failing) board.set_action(c, kCrashes[pick(std::size(kCrashes))]);
          break;
        case Plan::throw_collect:
          failing.insert(pick(kChunks));
          failing.insert(pick(kChunks));
          for (std::size_t c : failing) board.set_action(c, kThrows[pick(std::size(kThrows))]);
          break;
        case Plan::hang_collect:
          failing.insert(pick(kChunks));
          board.set_action(*failing.begin(), pick(2) == 0 ? Action::hang : Action::hang_ignore_term);
          options.chunk_timeout = 250ms;
          options.timeout_grace = 50ms;
          break;
        case Plan::cancel:
          cancel_after = std::chrono::microseconds(pick(3000));
          options.cancel_grace = 10ms;
          must_cancel = pick(2) == 0;  // then one chunk waits for a release that never comes
          if (must_cancel) board.set_action(pick(kChunks), Action::wait);
          break;
      }
      SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
      WorkerOrchestrator orchestrator{pool, {&sums}, options};
      const RunOutcome out = run_on_loop(orchestrator, cancel_after);
      const std::string context = "run " + std::to_string(run) + " (plan " + std::to_string(static_cast<int>(plan)) +
                                  ", seed " + std::to_string(seed) + ")";
      SCOPED_TRACE(context);

      ++tally.runs;
      tally.chunks += kChunks;
      // Whatever the outcome: each delivered chunk once, with its right sum.
      EXPECT_EQ(sums.deliveries, sums.sums.size()) << "a chunk was delivered twice";
      for (const auto& [start, sum] : sums.sums) {
        EXPECT_EQ(sum, expected_sum({start, start + kChunk})) << "chunk at " << start;
        EXPECT_EQ(failing.count(start / kChunk), 0U) << "chunk " << start / kChunk << " should have failed";
      }
      tally.chunks_delivered += sums.sums.size();

      if (!out.error) {
        ++tally.completed;
        EXPECT_FALSE(must_cancel) << "a run with a chunk that never ends completed";
        ASSERT_TRUE(out.report);
        EXPECT_TRUE(options.on_error == ErrorPolicy::collect || failing.empty());
        // Collect mode: delivered + failed = submitted, and the failures are exactly the scripted ones.
        std::set<std::size_t> failed;
        for (const auto& f : out.report->failures) {
          failed.insert(f.range.start / kChunk);
          if (plan == Plan::hang_collect) expect_failure_is<mpaio::ChunkTimeout>(f);
          if (plan == Plan::crash_collect) expect_failure_is<mpaio::WorkerCrashed>(f);
          if (plan == Plan::throw_collect) expect_failure_is<mpaio::ChunkError>(f);
        }
        EXPECT_EQ(failed, failing);
        EXPECT_EQ(sums.sums.size() + out.report->failures.size(), kChunks);
        tally.chunks_failed += out.report->failures.size();
        continue;
      }
      try {
        std::rethrow_exception(out.error);
      } catch (const mpaio::RunCancelled&) {
        ++tally.cancelled;
        EXPECT_EQ(plan, Plan::cancel) << "only a cancelled run may throw RunCancelled";
        tally.chunks_cancelled += kChunks - sums.sums.size();
      } catch (const mpaio::WorkerCrashed& e) {
        ++tally.failed;
        EXPECT_EQ(plan, Plan::crash_fail_fast) << e.what();
        EXPECT_EQ(failing.count(e.range().start / kChunk), 1U) << e.what();
        // Fail fast: the failed chunk, the delivered ones, and the rest stopped by the policy.
        ++tally.chunks_failed;
        tally.chunks_cancelled += kChunks - sums.sums.size() - 1;
      } catch (const std::exception& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
      }
    }
    record_timing("soak, " + std::to_string(tally.runs) + " runs", ms_between(started, now_ns()));
    std::printf("[soak] runs: %zu completed + %zu failed + %zu cancelled = %zu submitted\n", tally.completed,
                tally.failed, tally.cancelled, tally.runs);
    std::printf("[soak] chunks: %zu delivered + %zu failed + %zu cancelled = %zu submitted\n",
                tally.chunks_delivered, tally.chunks_failed, tally.chunks_cancelled, tally.chunks);
    EXPECT_EQ(tally.runs, runs);
    EXPECT_EQ(tally.completed + tally.failed + tally.cancelled, tally.runs);
    EXPECT_EQ(tally.chunks_delivered + tally.chunks_failed + tally.chunks_cancelled, tally.chunks);
    if (runs >= 1000) {  // the mix happened: each kind of outcome, many times
      EXPECT_GT(tally.failed, runs / 100);
      EXPECT_GT(tally.cancelled, runs / 100);
      EXPECT_GT(tally.chunks_failed, runs / 10);
    }

    // With the pool still alive: as many fds and children as after its first run (replacements leak none).
    board.reset();
    expect_healthy_run(pool, ints, kChunk);
    EXPECT_EQ(open_fds(), fds_with_pool) << "fds leaked by the runs";
    EXPECT_EQ(children_of(::getpid()).size(), children_with_pool.size())
        << "children now: " << describe_pids(children_of(::getpid()));
  }
  // And without it: back to the start.
  EXPECT_EQ(open_fds(), fds_at_start);
  poll_until([&] { return children_of(::getpid()) == children_at_start; }, 2s);
  EXPECT_EQ(children_of(::getpid()), children_at_start) << describe_pids(children_of(::getpid()));
  EXPECT_EQ(shm_entries_of(::getpid()).size(), shm_at_start);
}

}  // namespace
