// Reliability: Ctrl-C. SIGINT to the demo (examples/example_runner), which runs in a process group of its
// own as a shell's foreground job does, while its workers are busy, and while they are idle (the demo is
// still filling its array, before the run): sent to the whole group, as a terminal's Ctrl-C is, and (idle)
// to the demo alone, as `kill -INT` does. It exits within 2 s with status 130 and exactly one line
// "example_runner: interrupted" on stderr, leaving no process (its fork server and workers are gone; this
// test is their subreaper, so a leaked one would become its child) and no /dev/shm/mpaio-* entry. Workers
// ignore SIGINT themselves (a Ctrl-C reaches the whole process group).
//
// The demo's path comes from CMake (MPAIO_EXAMPLE_RUNNER, see tests/CMakeLists.txt); without the examples
// the demo tests are skipped.
#include <fcntl.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "support/child_process.hpp"
#include "support/program.hpp"
#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using namespace mpaio_test::rel;
using namespace std::chrono_literals;

#ifdef MPAIO_EXAMPLE_RUNNER
constexpr const char* kDemo = MPAIO_EXAMPLE_RUNNER;
#else
constexpr const char* kDemo = nullptr;
#endif

/// The user CPU ticks (10 ms) of both idle workers together: what starting them costs. Under ThreadSanitizer
/// its runtime's start-up in each worker took 2 ticks there; a worker that had run a chunk of the idle test
/// (4 million elements, instrumented) would show several more.
#if defined(__SANITIZE_THREAD__)
constexpr long kIdleWorkerTicks = 3;
#else
constexpr long kIdleWorkerTicks = 1;
#endif

/// Array sizes tried, smallest first. The demo's exit after Ctrl-C includes the kernel freeing its array and
/// the workers' mappings of it (the program's memory, not mpaio's doing): measured here on a 2-core machine
/// shared with many compilers (load 12-18), ~1 s per GB, so a 2.4 GB array alone could take the whole 2 s.
/// So the busy test starts small (40 million int64, 320 MB: each of the 2 workers sums 160 MB) and doubles
/// the size only if the run finished before it could be interrupted.
constexpr std::size_t kSizes[] = {40'000'000, 80'000'000, 160'000'000};
/// The idle test interrupts the set-up, where the demo looks for Ctrl-C only once SharedArray::create has
/// reserved the whole array and then after each slice of 16M elements it fills: with 320 MB that alone took
/// 1.5-1.9 s here under load. 8 million int64 (64 MB) keeps that latency small and the set-up still lasts
/// far longer than this test takes to send the signal once the demo's handler is in.
constexpr std::size_t kIdleSize = 8'000'000;

/// The demo's pool as seen in /proc: fork server and workers by pid, with their names.
std::map<pid_t, std::string> pool_processes(pid_t demo) {
  std::map<pid_t, std::string> out;
  for (pid_t p : descendants_of(demo)) {
    const std::string comm = comm_of(p);
    if (comm.rfind("mpaio-", 0) == 0) out[p] = comm;
  }
  return out;
}

/// How an attempt to interrupt the demo went.
enum class Attempt { interrupted, missed };

class reliability_DemoInterrupt : public ReliabilityTest {
 protected:
  void SetUp() override {
    if (kDemo == nullptr) GTEST_SKIP() << "example_runner is not built (MPAIO_BUILD_EXAMPLES=OFF)";
  }

  /// Runs the demo on `size` elements; once its pool (fork server, 2 workers) exists and it catches SIGINT,
  /// polls only those processes until `ready(demo, workers)`; sends SIGINT (to the process group when
  /// `group`), and checks the exit, the output and the leftovers. Returns `missed` when the demo finished
  /// its run before it was interrupted (a machine faster than expected: try a bigger size).
  Attempt interrupt_when(const std::string& label, std::size_t size, bool group,
                         const std::function<bool(pid_t demo, const std::vector<pid_t>& workers)>& ready) {
    Subreaper reaper;
    EXPECT_TRUE(reaper.ok());
    Program demo = start({kDemo, "--size", std::to_string(size), "--workers", "2", "--partitions", "2"});
    EXPECT_GT(demo.pid, 0);
    if (demo.pid <= 0) return Attempt::interrupted;
    std::map<pid_t, std::string> pool;  // fork server and workers
    std::vector<pid_t> workers;
    bool exited_early = false;
    auto finished = [&] {
      if (!process_gone(demo.pid)) return false;
      exited_early = true;
      return true;
    };
    bool hit = poll_until(
        [&] {
          if (finished()) return true;
          pool = pool_processes(demo.pid);
          workers.clear();
          for (const auto& [pid, comm] : pool) {
            if (comm.rfind("mpaio-w", 0) == 0) workers.push_back(pid);
          }
          return pool.size() == 3 && workers.size() == 2 && catches_signal(demo.pid, SIGINT);
        },
        60s, 1ms);
    if (hit && !exited_early) hit = poll_until([&] { return finished() || ready(demo.pid, workers); }, 60s, 200us);
    if (exited_early || !hit) {
      ::kill(demo.pid, SIGKILL);
      const auto r = wait_child(demo.pid, 10s);
      const std::string out = Program::drain(demo.out);
      if (exited_early && r.exited_with(0) && out.find("correct") != std::string::npos) return Attempt::missed;
      ADD_FAILURE() << "the demo " << (exited_early ? "ended" : "never reached the moment to interrupt") << " ("
                    << r.describe() << "); stderr: " << Program::drain(demo.err) << " stdout: " << out;
      return Attempt::interrupted;
    }
    std::size_t forksrv = 0;
    for (const auto& [pid, comm] : pool) forksrv += comm == "mpaio-forksrv";
    EXPECT_EQ(forksrv, 1U);

    const std::int64_t sent = now_ns();
    EXPECT_EQ(::kill(group ? -demo.pid : demo.pid, SIGINT), 0);
    const auto result = wait_child(demo.pid, 20s);
    const std::int64_t ended = now_ns();
    const std::string err = Program::drain(demo.err);
    const std::string out = Program::drain(demo.out);
    if (result.exited_with(0) && out.find("correct") != std::string::npos && err.empty()) {
      return Attempt::missed;  // the run ended between our look and the signal
    }
    const double ms = ms_between(sent, ended);
    record_timing("demo exit after SIGINT (" + label + ", --size " + std::to_string(size) + ")", ms);
    EXPECT_TRUE(result.exited_with(130)) << result.describe();
    EXPECT_LT(ms, kExitLimitMs) << "the demo must exit within " << kExitLimitMs / 1000 << " s of SIGINT";
    EXPECT_EQ(err, "example_runner: interrupted\n");
    EXPECT_EQ(out.find("correct"), std::string::npos) << "the run was not interrupted: " << out;

    // Nothing left: every pool process is gone (none became our child: the fixture checks that too), and
    // no named segment of the demo.
    std::vector<pid_t> pids;
    for (const auto& [pid, comm] : pool) pids.push_back(pid);
    const auto left = wait_gone(pids, 0ms);
    EXPECT_TRUE(left.empty()) << "left running: " << describe_pids(left);
    EXPECT_TRUE(shm_entries_of(demo.pid).empty());
    return Attempt::interrupted;
  }
};

TEST_F(reliability_DemoInterrupt, CtrlCWhileTheWorkersAreBusyExits130Within2sAndLeavesNothing) {
  // Busy: a worker has started its chunk: it has run for a clock tick (an idle one sleeps on a futex and
  // has none) or faulted in 100 pages of the array beyond what it had when first seen.
  for (std::size_t size : kSizes) {
    std::map<pid_t, long> faults_at_start;
    pid_t busy = 0;
    const Attempt attempt = interrupt_when(
        "workers busy, SIGINT to the process group", size, true, [&](pid_t, const std::vector<pid_t>& workers) {
          for (pid_t w : workers) {
            const auto st = proc_stat(w);
            if (!st) continue;
            const long first = faults_at_start.emplace(w, st->minflt).first->second;
            if (st->utime >= 1 || st->minflt - first >= 100) {
              busy = w;
              return true;
            }
          }
          return false;
        });
    if (HasFailure() || attempt == Attempt::interrupted) {
      EXPECT_NE(busy, 0);
      return;
    }
    std::printf("[note] the run of --size %zu ended before the interrupt: trying a bigger one\n", size);
  }
  FAIL() << "every run ended before it could be interrupted";
}

/// Where the idle test sends SIGINT.
struct SigintTarget : NamedCase {
  bool group;  ///< the demo's process group (a terminal's Ctrl-C), or the demo alone
};

class reliability_DemoInterruptIdle : public reliability_DemoInterrupt,
                                      public ::testing::WithParamInterface<SigintTarget> {};

TEST_P(reliability_DemoInterruptIdle, SigintWhileTheWorkersAreIdleDuringSetUpExits130Within2sAndLeavesNothing) {
  // Idle: both workers exist (the pool is built first) and the demo has its handler: it is creating or
  // filling its array, before the run; the workers have not run anything.
  const SigintTarget target = GetParam();
  long worker_ticks = -1;
  const std::string label = std::string("workers idle during set-up, SIGINT to the ") +
                            (target.group ? "process group" : "demo");
  const Attempt attempt = interrupt_when(label, kIdleSize, target.group,
                                         [&](pid_t, const std::vector<pid_t>& workers) {
                                           worker_ticks = 0;
                                           for (pid_t w : workers) {
                                             if (const auto st = proc_stat(w)) worker_ticks += st->utime;
                                           }
                                           return true;
                                         });
  EXPECT_EQ(attempt, Attempt::interrupted) << "the demo ran to the end before the interrupt";
  EXPECT_LE(worker_ticks, kIdleWorkerTicks) << "the workers were not idle when the demo was interrupted";
}

INSTANTIATE_TEST_SUITE_P(Targets, reliability_DemoInterruptIdle,
                         ::testing::Values(SigintTarget{{"ProcessGroup"}, true}, SigintTarget{{"DemoOnly"}, false}),
                         case_name<SigintTarget>);

/// Workers and the fork server ignore SIGINT: the caller decides what Ctrl-C means.
class reliability_WorkerSigint : public ReliabilityTest {};

TEST_F(reliability_WorkerSigint, AWorkerOrForkServerSentSigintSurvivesAndKeepsWorking) {
  Board board(1000);
  mpaio::ProcessPoolExecutor pool{{.workers = 2}};
  auto ints = iota_array(10'000);
  const std::vector<pid_t> before = worker_pids(pool);
  // Busy and idle workers both: one runs a chunk that waits, the other is idle.
  board.set_action(0, Action::wait);
  SumWorker sums{mpaio::DataIterator::chunks(ints.meta(), 1000)};
  mpaio::WorkerOrchestrator orchestrator{pool, {&sums}};
  std::thread interrupter([&] {
    const pid_t busy = board.wait_started(0);
    for (pid_t p : before) ::kill(p, SIGINT);
    ::kill(pool.fork_server_pid(), SIGINT);
    std::this_thread::sleep_for(100ms);
    if (busy > 0) board.set(Cell::release, 1);
  });
  const RunOutcome out = run_outcome(orchestrator);
  interrupter.join();
  ASSERT_FALSE(out.error) << out.what();
  expect_sums(sums);
  EXPECT_EQ(worker_pids(pool), before) << "a worker died of SIGINT";
  for (pid_t p : before) EXPECT_FALSE(process_gone(p));
  EXPECT_FALSE(process_gone(pool.fork_server_pid()));
  for (const auto& c : out.report->chunks) EXPECT_FALSE(c.failed);
  board.reset();
  expect_healthy_run(pool, ints, 1000);  // the fork server still serves (no respawn needed, but alive)
}

}  // namespace
