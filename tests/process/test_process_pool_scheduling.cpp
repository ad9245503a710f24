// How the process pool hands out chunks and reports results: a worker holds the results of short chunks
// to wake the caller once per batch, yet a result never waits behind a long chunk; long chunks are not
// queued behind each other on one worker while another is free. Every test runs under a Watchdog.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <thread>
#include <vector>

#include "mpaio/mpaio.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using mpaio::ProcessPoolExecutor;
using mpaio::Range;
using mpaio::SharedArray;
using mpaio::WorkerOrchestrator;
using Clock = std::chrono::steady_clock;

/// Each element is how long its chunk sleeps, in milliseconds (0: returns at once). The callback records
/// when each chunk's result reached the caller.
struct SleepWorker : mpaio::Worker<SleepWorker, std::int64_t> {
  using Worker::Worker;
  static std::int64_t process(mpaio::ArrayView<const std::int64_t> data, Range chunk) {
    std::this_thread::sleep_for(std::chrono::milliseconds(data[chunk.start]));
    return static_cast<std::int64_t>(chunk.start);
  }
  void process_callback(std::int64_t index, Range) { arrived[index] = Clock::now(); }
  std::map<std::int64_t, Clock::time_point> arrived;
};

/// One chunk per element.
mpaio::DataIterator one_per_element(const SharedArray<std::int64_t>& array) {
  return mpaio::DataIterator::chunks(array.meta(), 1);
}

TEST(ProcessPoolScheduling, AResultHeldForItsBatchDoesNotWaitBehindALongChunk) {
  mpaio_test::Watchdog watchdog(60);
  // One worker, instant chunks (the pool learns that chunks are short: the queue deepens and the worker
  // holds results to wake the caller once per batch), and among them four chunks of 400 ms, 201 chunks
  // apart so that each comes at another point of a batch of queue_depth / 2.
  const std::vector<std::size_t> long_ones{200, 401, 602, 803};
  auto sleeps = SharedArray<std::int64_t>::create({1000});
  std::fill(sleeps.begin(), sleeps.end(), 0);
  for (std::size_t i : long_ones) sleeps[i] = 400;
  ProcessPoolExecutor pool{{.workers = 1, .queue_depth = 8, .max_result_delay = 1ms}};
  SleepWorker worker{one_per_element(sleeps)};
  WorkerOrchestrator orchestrator{pool, {&worker}};
  const auto report = orchestrator.run_blocking();
  ASSERT_EQ(worker.arrived.size(), sleeps.size());
  EXPECT_EQ(report.chunks.size(), sleeps.size());
  // The results of the chunks before a long one reached the caller while it ran; had the worker kept
  // them until its next wake-up, they would have arrived with the long chunk's own result.
  for (std::size_t l : long_ones) {
    const auto long_done = worker.arrived.at(static_cast<std::int64_t>(l));
    for (std::size_t i = l - 10; i < l; ++i) {
      EXPECT_LT(worker.arrived.at(static_cast<std::int64_t>(i)), long_done - 250ms) << "chunk " << i << " before " << l;
    }
  }
}

TEST(ProcessPoolScheduling, BatchingOffDeliversEveryResultOfEveryRun) {
  mpaio_test::Watchdog watchdog(60);
  auto sleeps = SharedArray<std::int64_t>::create({5000});
  std::fill(sleeps.begin(), sleeps.end(), 0);
  ProcessPoolExecutor pool{{.workers = 2, .max_result_delay = 0us}};
  SleepWorker worker{one_per_element(sleeps)};
  WorkerOrchestrator orchestrator{pool, {&worker}};
  for (int run = 0; run < 3; ++run) {
    worker.arrived.clear();
    (void)orchestrator.run_blocking();
    ASSERT_EQ(worker.arrived.size(), sleeps.size()) << "run " << run;
  }
}

TEST(ProcessPoolScheduling, LongChunksAreNotQueuedBehindALongChunk) {
  mpaio_test::Watchdog watchdog(60);
  // Two workers, a deep queue allowed: the first chunk takes 1.5 s, the others 100 ms. A worker busy with
  // the long one holds at most one more chunk; the other worker runs the rest, so the run takes about as
  // long as the long chunk plus one short one, not the long one plus its share of the queue.
  auto sleeps = SharedArray<std::int64_t>::create({9});
  std::fill(sleeps.begin(), sleeps.end(), 100);
  sleeps[0] = 1500;
  ProcessPoolExecutor pool{{.workers = 2, .queue_depth = 32}};
  SleepWorker worker{one_per_element(sleeps)};
  WorkerOrchestrator orchestrator{pool, {&worker}};
  const auto report = orchestrator.run_blocking();
  ASSERT_EQ(report.chunks.size(), sleeps.size());
  std::uint32_t long_slot = 0;
  for (const auto& chunk : report.chunks) {
    if (chunk.range.start == 0) long_slot = chunk.slot;
  }
  std::size_t beside_long = 0;  // chunks the worker of the long chunk ran besides it
  for (const auto& chunk : report.chunks) {
    if (chunk.slot == long_slot && chunk.range.start != 0) ++beside_long;
  }
  EXPECT_LE(beside_long, 1U) << "short chunks waited in the queue of the worker running the long one";
}

}  // namespace
