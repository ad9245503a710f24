// Reliability: a soak. Thousands of runs on one process pool, most of them clean, the others with crashes,
// exceptions or hung chunks stopped by their timeout (in collect and in fail-fast mode), chunks that fail
// and are retried (recovering or not), a cancellation at a random moment, and a cancellation of a run
// that already had a crash, in a seeded random order. Every run ends (the watchdog would say otherwise)
// and accounts for each of its chunks exactly once, from three independent sources: the callbacks (each
// chunk delivered at most once, with the right sum), the failures (the report's, or the exception a
// fail-fast run throws) and the chunks the report counts as unfinished; the failures are chunks scripted
// to fail, with the right error type. Now and then, and at the end: the test process's fds and children,
// the fork server's children (exactly the pool's live workers: a leaked or zombie worker shows) and its
// fds are what they were at the start, and no /dev/shm entry is left.
//
// The CI version runs 5,000 runs (2,000 under a sanitizer, which slows every dispatch several times): about
// 30 s on a quiet 2-core machine, so that it stays under 2 minutes, which its watchdog enforces, while ctest
// runs other tests beside it. A longer one on demand (the watchdog grows with it):
//   MPAIO_SOAK_RUNS=100000 MPAIO_SOAK_SEED=7 build/release/tests/test_reliability_soak
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

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
constexpr std::size_t kDefaultRuns = 5'000;
#endif
/// The CI bound of 2 minutes, less a margin so that the watchdog (which kills the pool's processes) fires
/// before ctest's own 120 s timeout (which would not).
constexpr std::chrono::seconds kDefaultLimit{110};

std::size_t env_or(const char* name, std::size_t fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 10) : fallback;
}

std::size_t soak_runs() { return env_or("MPAIO_SOAK_RUNS", kDefaultRuns); }

/// What a run is scripted to do.
enum class Plan {
  clean,
  crash_collect,
  crash_fail_fast,
  throw_collect,
  throw_fail_fast,
  retry_recovers,   ///< one chunk fails on its first attempt only; retries = 1
  retry_exhausted,  ///< one chunk fails on both its attempts; retries = 1
  hang_collect,
  hang_fail_fast,
  cancel,             ///< cancelled at a random moment, maybe with a chunk that never ends
  crash_then_cancel,  ///< collect mode: a chunk crashes, another never ends, the run is cancelled
};
constexpr const char* kPlanNames[] = {"clean",          "crash_collect",   "crash_fail_fast", "throw_collect",
                                      "throw_fail_fast", "retry_recovers", "retry_exhausted", "hang_collect",
                                      "hang_fail_fast",  "cancel",         "crash_then_cancel"};

/// Percent of the runs per plan, in the order of Plan.
constexpr std::size_t kPlanPercent[] = {58, 8, 5, 5, 4, 5, 3, 1, 1, 8, 2};
static_assert(std::size(kPlanPercent) == std::size(kPlanNames));
static_assert([] {
  std::size_t sum = 0;
  for (std::size_t percent : kPlanPercent) sum += percent;
  return sum == 100;
}());

/// How a scripted chunk fails.
enum class Failure { crash, exception, timeout };

/// The chunks of the run, and the runs of each outcome.
struct Tally {
  std::size_t runs = 0, completed = 0, failed = 0, cancelled = 0;
  std::size_t retried = 0, timed_out = 0, cancelled_after_a_crash = 0;
  std::size_t chunks = 0, chunks_delivered = 0, chunks_failed = 0, chunks_unfinished = 0;
};

/// The crash actions, one picked at random per crashing chunk.
constexpr std::int64_t kCrashes[] = {Action::segv, Action::abort_, Action::exit42, Action::kill_self};
constexpr std::int64_t kThrows[] = {Action::throw_runtime, Action::throw_custom, Action::throw_non_std};

/// Expects the error of a failed chunk to be of the kind it was scripted to fail with.
void expect_kind(const std::exception_ptr& error, Failure kind, mpaio::Range range) {
  try {
    std::rethrow_exception(error);
  } catch (const mpaio::WorkerCrashed& e) {
    EXPECT_EQ(kind, Failure::crash) << e.what();
  } catch (const mpaio::ChunkTimeout& e) {
    EXPECT_EQ(kind, Failure::timeout) << e.what();
  } catch (const mpaio::ChunkError& e) {
    EXPECT_EQ(kind, Failure::exception) << e.what();
    EXPECT_EQ(e.range(), range) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "chunk " << range << " failed with something else than a ChunkError: " << e.what();
  }
}

class reliability_Soak : public ReliabilityTest {
 protected:
  reliability_Soak() : ReliabilityTest(soak_limit()) {}
  /// kDefaultLimit for the CI runs; in proportion for more.
  static std::chrono::seconds soak_limit() {
    const auto per_default = static_cast<std::size_t>(kDefaultLimit.count());
    return std::chrono::seconds(std::max(per_default, per_default * soak_runs() / kDefaultRuns));
  }
};

TEST_F(reliability_Soak, EveryRunOfAMixOfCrashesTimeoutsRetriesAndCancellationsAccountsForEachChunkAndNothingLeaks) {
  const std::size_t runs = soak_runs();
  const std::size_t seed = env_or("MPAIO_SOAK_SEED", 20'261'122);
  std::printf("[soak] %zu runs, seed %zu (MPAIO_SOAK_RUNS, MPAIO_SOAK_SEED)\n", runs, seed);
  std::mt19937_64 rng(seed);
  auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };

  const auto fds_at_start = open_fds_of(::getpid());
  const std::vector<pid_t> children_at_start = children_of(::getpid());
  const std::size_t shm_at_start = shm_entries_of(::getpid()).size();
  Tally tally;
  const std::int64_t started = now_ns();
  {
    ScriptedPool scripted(kChunk * kChunks, kChunk, kWorkers);
    auto& [board, pool, ints, _] = scripted;
    expect_healthy_run(pool, ints, kChunk);  // warm: every worker has mapped the array
    const pid_t fork_server = pool.fork_server_pid();
    const auto fds_with_pool = open_fds_of(::getpid());
    // The fork server's descriptors, but for the program files and debug information its crash symbolizer
    // opens at the first crash and keeps (a cache of read-only files, not a leak).
    auto server_fds = [&] {
      auto fds = open_fds_of(fork_server);
      std::erase_if(fds, [](const auto& fd) {
        const std::string& path = fd.second;
        return path.starts_with("/") && !path.starts_with("/dev/") && !path.starts_with("/memfd:");
      });
      return fds;
    };
    const auto fork_server_fds = server_fds();
    ASSERT_FALSE(fork_server_fds.empty()) << "cannot read /proc/" << fork_server << "/fd";

    // After a healthy run (which replaces any worker a run stopped): this process's only child is the fork
    // server, whose children are exactly the pool's live workers, and neither holds more descriptors than
    // at the start (counts: a replaced worker's socket and pidfd are new ones, maybe under other numbers).
    auto expect_processes_as_at_start = [&](const std::string& when) {
      SCOPED_TRACE(when);
      board.reset();
      expect_healthy_run(pool, ints, kChunk);
      std::vector<pid_t> workers = worker_pids(pool);
      std::sort(workers.begin(), workers.end());
      const bool settled = poll_until(
          [&] {
            return children_of(::getpid()) == std::vector<pid_t>{fork_server} && children_of(fork_server) == workers &&
                   server_fds().size() == fork_server_fds.size() &&
                   open_fds_of(::getpid()).size() == fds_with_pool.size();
          },
          2000ms);
      EXPECT_TRUE(settled);
      EXPECT_EQ(children_of(::getpid()), std::vector<pid_t>{fork_server})
          << "children: " << describe_pids(children_of(::getpid()));
      EXPECT_EQ(children_of(fork_server), workers)
          << "the fork server's children: " << describe_pids(children_of(fork_server))
          << "; the pool's workers: " << describe_pids(workers);
      for (pid_t w : workers) EXPECT_NE(process_state(w), 'Z') << "worker " << w << " is a zombie";
      EXPECT_EQ(server_fds().size(), fork_server_fds.size())
          << "the fork server's fds now: " << describe_fds(server_fds())
          << "; at the start: " << describe_fds(fork_server_fds);
      EXPECT_EQ(open_fds_of(::getpid()).size(), fds_with_pool.size())
          << "fds now: " << describe_fds(open_fds_of(::getpid())) << "; at the start: " << describe_fds(fds_with_pool);
    };

    for (std::size_t run = 0; run < runs && !HasFailure(); ++run) {
      if (run > 0 && run % 1000 == 0) expect_processes_as_at_start("before run " + std::to_string(run));
      board.reset();
      std::size_t roll = pick(100);
      std::size_t p = 0;
      while (roll >= kPlanPercent[p]) roll -= kPlanPercent[p++];
      const auto plan = static_cast<Plan>(p);
      mpaio::OrchestratorOptions options;
      options.on_error = pick(2) == 0 ? ErrorPolicy::fail_fast : ErrorPolicy::collect;
      std::map<std::size_t, Failure> failing;  // the chunks scripted to fail for good, and how
      std::optional<std::size_t> retried;      // the chunk scripted to fail once or twice with retries = 1
      std::optional<std::chrono::microseconds> cancel_after;
      bool must_cancel = false;
      auto crash = [&](std::size_t c, std::int64_t extra = 0) {
        board.set_action(c, kCrashes[pick(std::size(kCrashes))] + extra);
        return Failure::crash;
      };
      auto throws = [&](std::size_t c, std::int64_t extra = 0) {
        board.set_action(c, kThrows[pick(std::size(kThrows))] + extra);
        return Failure::exception;
      };
      auto fail_one_or_two = [&](ErrorPolicy policy, const auto& make_fail) {
        options.on_error = policy;
        for (std::size_t i = 0, count = 1 + pick(2); i < count; ++i) {
          const std::size_t c = pick(kChunks);
          failing[c] = make_fail(c, 0);
        }
      };
      switch (plan) {
        case Plan::clean: break;
        case Plan::crash_collect:
        case Plan::crash_fail_fast:
          fail_one_or_two(plan == Plan::crash_collect ? ErrorPolicy::collect : ErrorPolicy::fail_fast, crash);
          break;
        case Plan::throw_collect:
        case Plan::throw_fail_fast:
          fail_one_or_two(plan == Plan::throw_collect ? ErrorPolicy::collect : ErrorPolicy::fail_fast, throws);
          break;
        case Plan::retry_recovers:
        case Plan::retry_exhausted: {
          options.retries = 1;
          retried = pick(kChunks);
          const std::int64_t extra = plan == Plan::retry_recovers ? std::int64_t{Action::first_attempt_only} : 0;
          const Failure kind = pick(2) == 0 ? crash(*retried, extra) : throws(*retried, extra);
          if (plan == Plan::retry_exhausted) failing[*retried] = kind;
          break;
        }
        case Plan::hang_collect:
        case Plan::hang_fail_fast: {
          options.on_error = plan == Plan::hang_collect ? ErrorPolicy::collect : ErrorPolicy::fail_fast;
          const std::size_t c = pick(kChunks);
          board.set_action(c, pick(2) == 0 ? Action::hang : Action::hang_ignore_term);
          failing[c] = Failure::timeout;
          options.chunk_timeout = 100ms;
          options.timeout_grace = 50ms;
          break;
        }
        case Plan::cancel:
          cancel_after = std::chrono::microseconds(pick(3000));
          options.cancel_grace = 10ms;
          must_cancel = pick(2) == 0;  // then one chunk waits for a release that never comes
          if (must_cancel) board.set_action(pick(kChunks), Action::wait);
          break;
        case Plan::crash_then_cancel:
          options.on_error = ErrorPolicy::collect;
          options.cancel_grace = 10ms;
          failing[0] = crash(0);  // the first chunk dispatched: it has crashed long before the cancellation
          board.set_action(1 + pick(kChunks - 1), Action::wait);
          must_cancel = true;
          cancel_after = 30ms;
          break;
      }
      SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
      WorkerOrchestrator orchestrator{pool, {&sums}, options};
      const RunOutcome out = run_on_loop(orchestrator, cancel_after);
      SCOPED_TRACE("run " + std::to_string(run) + " (plan " + kPlanNames[p] + ", " +
                   (options.on_error == ErrorPolicy::collect ? "collect" : "fail fast") + ", seed " +
                   std::to_string(seed) + ")");

      // Whatever the outcome, each chunk once: delivered, failed or unfinished.
      const mpaio::RunReport& report = out.report ? *out.report : orchestrator.last_report();
      ASSERT_EQ(report.worker_types.size(), 1U) << "no report of the run";
      const std::set<std::size_t> failed = expect_accounted(sums, report);
      for (const auto& f : report.failures) {
        const std::size_t c = f.range.start / kChunk;
        const auto scripted_failure = failing.find(c);
        if (scripted_failure == failing.end()) {
          ADD_FAILURE() << "chunk " << c << " failed but was not scripted to: " << f.message;
        } else {
          expect_kind(f.error, scripted_failure->second, f.range);
        }
      }
      if (retried) {
        EXPECT_EQ(board.attempts(*retried), 2) << "chunk " << *retried << " should have been tried twice";
        ++tally.retried;
      }
      ++tally.runs;
      tally.chunks += kChunks;
      tally.chunks_delivered += sums.sums.size();
      tally.chunks_failed += report.failures.size();
      tally.chunks_unfinished += report.unfinished;
      if (plan == Plan::hang_collect || plan == Plan::hang_fail_fast) tally.timed_out += failed.size();

      if (!out.error) {
        ++tally.completed;
        EXPECT_FALSE(must_cancel) << "a run with a chunk that never ends completed";
        EXPECT_EQ(report.unfinished, 0U);
        if (options.on_error == ErrorPolicy::collect) {
          std::set<std::size_t> scripted;
          for (const auto& [c, kind] : failing) scripted.insert(c);
          EXPECT_EQ(failed, scripted) << "collect mode: the failures are exactly the chunks scripted to fail";
        } else {
          EXPECT_TRUE(failing.empty()) << "a fail-fast run with a failing chunk completed";
        }
        continue;
      }
      try {
        std::rethrow_exception(out.error);
      } catch (const mpaio::RunCancelled& e) {
        ++tally.cancelled;
        EXPECT_TRUE(plan == Plan::cancel || plan == Plan::crash_then_cancel) << e.what();
        if (must_cancel) {
          EXPECT_GE(report.unfinished, 1U) << "the chunk that never ends was not counted unfinished";
        }
        if (plan == Plan::crash_then_cancel && !failed.empty()) ++tally.cancelled_after_a_crash;
      } catch (const mpaio::ChunkError& e) {
        ++tally.failed;
        EXPECT_EQ(options.on_error, ErrorPolicy::fail_fast) << e.what();
        EXPECT_EQ(failing.count(e.range().start / kChunk), 1U) << "not a chunk scripted to fail: " << e.what();
        ASSERT_FALSE(report.failures.empty()) << e.what();
        EXPECT_EQ(report.failures.front().range, e.range()) << "the error thrown is the first failure";
        EXPECT_EQ(report.failures.front().message, e.what());
      } catch (const std::exception& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
      }
    }
    record_timing("soak, " + std::to_string(tally.runs) + " runs", ms_between(started, now_ns()));
    std::printf("[soak] runs: %zu completed, %zu failed, %zu cancelled (%zu after a crash); %zu with a retry, %zu "
                "timeouts\n",
                tally.completed, tally.failed, tally.cancelled, tally.cancelled_after_a_crash, tally.retried,
                tally.timed_out);
    std::printf("[soak] chunks: %zu delivered + %zu failed + %zu unfinished = %zu submitted\n",
                tally.chunks_delivered, tally.chunks_failed, tally.chunks_unfinished, tally.chunks);
    EXPECT_EQ(tally.runs, runs);
    EXPECT_EQ(tally.chunks_delivered + tally.chunks_failed + tally.chunks_unfinished, tally.chunks);
    if (runs >= 1000) {  // the mix happened: each kind of outcome, many times
      EXPECT_GT(tally.failed, runs / 100);
      EXPECT_GT(tally.cancelled, runs / 100);
      EXPECT_GT(tally.retried, runs / 100);
      EXPECT_GT(tally.chunks_failed, runs / 10);
      EXPECT_GT(tally.chunks_unfinished, runs / 100);
      EXPECT_GT(tally.timed_out, 0U);
      EXPECT_GT(tally.cancelled_after_a_crash, 0U) << "no cancelled run had a crash reported first";
    }

    // With the pool still alive: as many fds and children as after its first run (replacements leak none).
    expect_processes_as_at_start("at the end");
  }
  // And without it: back to the start.
  EXPECT_EQ(open_fds_of(::getpid()), fds_at_start) << "fds now: " << describe_fds(open_fds_of(::getpid()))
                                                    << "; at the start: " << describe_fds(fds_at_start);
  poll_until([&] { return children_of(::getpid()) == children_at_start; }, 2s);
  EXPECT_EQ(children_of(::getpid()), children_at_start) << describe_pids(children_of(::getpid()));
  EXPECT_EQ(shm_entries_of(::getpid()).size(), shm_at_start);
}

}  // namespace
