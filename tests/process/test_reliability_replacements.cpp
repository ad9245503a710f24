// Reliability: worker replacement in a program that already runs other threads when it creates its pools
// (the case the fork server exists for): one thread loops on malloc/free, another on a std::mutex. 1,000
// workers are killed with SIGKILL and replaced (each chunk kills its worker on its first attempt, the
// run retries it; and between runs the test kills a worker from outside), without a deadlock (watchdog)
// and with correct results.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using namespace mpaio_test::rel;
using namespace std::chrono_literals;
using mpaio::DataIterator;
using mpaio::ProcessPoolExecutor;
using mpaio::WorkerOrchestrator;

/// Threads that keep the allocator's and a mutex's locks busy while pools are created.
class BusyThreads {
 public:
  BusyThreads() {
    threads_.emplace_back([this] {
      std::minstd_rand rng(42);
      std::vector<void*> held(64, nullptr);
      while (!stop_.load(std::memory_order_relaxed)) {
        const std::size_t i = rng() % held.size();
        std::free(held[i]);
        held[i] = std::malloc(16 + rng() % 65536);
        if (held[i] != nullptr) static_cast<char*>(held[i])[0] = 1;
        ++malloc_loops;
      }
      for (void* p : held) std::free(p);
    });
    threads_.emplace_back([this] {
      while (!stop_.load(std::memory_order_relaxed)) {
        std::lock_guard lock(mutex_);
        ++mutex_loops_;
      }
    });
  }
  ~BusyThreads() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }
  std::atomic<std::uint64_t> malloc_loops{0};
  /// Rounds of the mutex thread so far.
  std::uint64_t mutex_loops() {
    std::lock_guard lock(mutex_);
    return mutex_loops_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::uint64_t mutex_loops_ = 0;  // under mutex_
  std::vector<std::thread> threads_;
};

class reliability_Replacements : public ReliabilityTest {};

TEST_F(reliability_Replacements, AThousandSigkilledWorkersAreReplacedWithoutDeadlockWhileOtherThreadsRun) {
  // 10 pools, each created while the threads run; each gets 99 chunks that kill their worker on their
  // first attempt and one kill from outside between its two runs: 10 x (99 + 1) = 1,000 replacements.
  constexpr int kPools = 10;
  constexpr std::size_t kSelfKills = 99;
  constexpr std::size_t kChunk = 1000;
  const std::int64_t start = now_ns();
  BusyThreads busy;
  // The pools are created by a program whose threads are already looping.
  ASSERT_TRUE(poll_until([&] { return busy.malloc_loops.load() > 0 && busy.mutex_loops() > 0; }, 10'000ms))
      << "the busy threads never ran";
  const std::uint64_t malloc_loops_at_start = busy.malloc_loops.load();
  const std::uint64_t mutex_loops_at_start = busy.mutex_loops();
  std::size_t replacements = 0;
  for (int round = 0; round < kPools; ++round) {
    Board board(kChunk);
    board.set(Cell::default_action, Action::kill_self + Action::first_attempt_only);
    board.set(Cell::malloc_bytes, 4096);  // the workers allocate too
    std::this_thread::sleep_for(1ms);     // the threads are in full swing when the pool forks
    ProcessPoolExecutor pool{{.workers = 2}};
    auto ints = iota_array(kSelfKills * kChunk);

    SumWorker sums{DataIterator::chunks(ints.meta(), kChunk)};
    WorkerOrchestrator orchestrator{pool, {&sums}, {.retries = 1}};
    const RunOutcome out = run_outcome(orchestrator);
    ASSERT_FALSE(out.error) << "round " << round << ": " << out.what();
    expect_sums(sums);
    std::size_t killed = 0;
    std::set<pid_t> killed_pids;  // each failed attempt killed a different process
    for (const auto& c : out.report->chunks) {
      if (!c.failed) continue;
      ++killed;
      EXPECT_TRUE(killed_pids.insert(c.pid).second) << "pid " << c.pid << " died twice";
      EXPECT_TRUE(process_gone(c.pid));
    }
    EXPECT_EQ(killed, kSelfKills) << "round " << round;
    replacements += killed;

    // Between runs: SIGKILL from outside; the next run replaces it (asynchronously: by the end of the run or
    // soon after).
    const pid_t victim = live_worker_pid(pool, 0);
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    ASSERT_TRUE(wait_gone({victim}, 5000ms).empty());
    board.reset();
    expect_healthy_run(pool, ints, kChunk);
    EXPECT_TRUE(poll_until([&] { return pool.worker_pid(0) != victim; }, 5000ms)) << "round " << round;
    ++replacements;
    if (HasFailure()) break;
  }
  const double ms = ms_between(start, now_ns());
  record_timing(std::to_string(replacements) + " worker replacements with 2 busy threads", ms);
  EXPECT_EQ(replacements, 1000U);
  // Both threads kept going all along (neither was stuck in a lock the forks left held).
  EXPECT_GT(busy.malloc_loops.load(), malloc_loops_at_start);
  EXPECT_GT(busy.mutex_loops(), mutex_loops_at_start);
}

}  // namespace
