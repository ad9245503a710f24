// Issue 11 item 14: the fork server is forked from a caller that may run other threads, and only the forking
// thread survives fork(): a lock another thread holds at that moment stays locked in the fork server, and in
// every worker forked from it, for ever. The process-wide locks a worker takes (spdlog's logger registry when
// it installs its logger, mpaio's segment registry, its worker-type registry, the fork-hooks table) are held
// across every fork mpaio makes. Here threads hammer each of those locks while pools are created one after the
// other; every pool must run a chunk whose worker logs. A lock copied while held would hang a worker (the
// Watchdog fails the test).
//
// The hammering loops take those locks without allocating: a thread inside the allocator at the moment of a
// fork is a hazard of the allocator, not of mpaio. glibc's malloc holds its arenas across fork(), but
// AddressSanitizer's allocator in GCC 12's runtime does not (it installs no fork handlers), so a child forked
// while another thread refills its size class from the shared allocator would hang in its first malloc.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "mpaio/fork_hooks.hpp"
#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/mpaio.hpp"
#include "support/watchdog.hpp"

namespace {

struct LoggingWorker : mpaio::Worker<LoggingWorker, std::int64_t> {
  using Worker::Worker;
  static std::int64_t process(mpaio::ArrayView<const std::int64_t> data, mpaio::Range r) {
    spdlog::info("chunk at {}", r.start);
    return data[r.start];
  }
  void process_callback(std::int64_t v) { total += v; }
  std::int64_t total = 0;
};

TEST(ForkSafety, PoolsCreatedWhileOtherThreadsHoldTheProcessWideLocksRunTheirWorkers) {
  mpaio_test::Watchdog watchdog(120);
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::warn);  // the workers' lines are filtered by the caller's level, not lost
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> loops{0};
  std::vector<std::thread> threads;
  auto sink = std::make_shared<spdlog::sinks::null_sink_mt>();
  spdlog::register_logger(std::make_shared<spdlog::logger>("hammer", sink));
  threads.emplace_back([&] {  // spdlog's registry lock
    const std::string name = "hammer";
    while (!stop) {
      (void)spdlog::get(name);
      ++loops;
    }
  });
  auto hammered = mpaio::SharedArray<std::int64_t>::create({16});
  threads.emplace_back([&] {  // the segment registry's lock
    while (!stop) {
      (void)mpaio::detail::find_segment(hammered.meta().shm_name);
      ++loops;
    }
  });
  threads.emplace_back([&] {  // the worker-type registry's and the fork-hooks table's locks
    const LoggingWorker probe{mpaio::DataIterator::chunks(mpaio::ArrayMeta{"x", mpaio::dtype_of<std::int64_t>(), {1}, 0}, 1)};
    { mpaio::ForkHooksRegistration warm_up({}); }  // the table's storage, allocated once
    while (!stop) {
      (void)mpaio::detail::find_worker_type(probe.worker_type());
      mpaio::ForkHooksRegistration hooks({});
      ++loops;
    }
  });
  while (loops.load() < 1000) std::this_thread::yield();
  auto ints = mpaio::SharedArray<std::int64_t>::create({8});
  for (std::size_t i = 0; i < ints.size(); ++i) ints[i] = static_cast<std::int64_t>(i);
  for (int round = 0; round < 40 && !HasFailure(); ++round) {
    mpaio::ProcessPoolExecutor pool{{.workers = 2}};
    LoggingWorker worker{mpaio::DataIterator::chunks(ints.meta(), 1)};
    mpaio::WorkerOrchestrator orchestrator{pool, {&worker}};
    (void)orchestrator.run_blocking();
    EXPECT_EQ(worker.total, 28) << "round " << round;
  }
  stop = true;
  for (auto& t : threads) t.join();
  spdlog::drop("hammer");
  spdlog::set_level(level);
}

}  // namespace
