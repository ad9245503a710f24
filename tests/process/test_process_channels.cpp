// The per-worker channels of ProcessPoolExecutor, white-box (this file sees src/process/channel.hpp): the
// task ring is never overrun, and a worker that writes a malformed result record is killed and reported,
// never trusted or waited on. Every test runs under a Watchdog.
#include <dirent.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "../../examples/seed_workers.hpp"
#include "mpaio/mpaio.hpp"
#include "process/channel.hpp"
#include "support/engine.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::DataIterator;
using mpaio::ProcessPoolExecutor;
using mpaio::SharedArray;
using mpaio::WorkerOrchestrator;

SharedArray<std::int64_t> make_ints(std::size_t n) {
  auto ints = SharedArray<std::int64_t>::create({n});
  std::iota(ints.begin(), ints.end(), 1);
  return ints;
}

void run_sum(ProcessPoolExecutor& pool, const SharedArray<std::int64_t>& ints, std::size_t chunks) {
  AddIntWorker adder{DataIterator::partitions(ints.meta(), chunks)};
  WorkerOrchestrator orchestrator{pool, {&adder}};
  (void)orchestrator.run_blocking();
  const auto n = static_cast<std::int64_t>(ints.size());
  EXPECT_EQ(adder.total, n * (n + 1) / 2);
}

TEST(ProcessPoolChannels, ManyArraysAndADeepQueueWhileTheWorkerIsStopped) {
  mpaio_test::Watchdog watchdog(60);
  // 60 arrays: 60 bind records go into the worker's task ring at the start of the run, then up to 33 chunk
  // records (queue_depth 32 + the running one). The worker is stopped (SIGSTOP) meanwhile, so none of them
  // is consumed before the caller has queued them all: the ring (64 records) must not be overrun.
  constexpr std::size_t kArrays = 60;
  ProcessPoolExecutor pool{{.workers = 1, .queue_depth = 32}};
  std::vector<SharedArray<std::int64_t>> arrays;
  std::vector<std::unique_ptr<AddIntWorker>> adders;
  std::vector<mpaio::WorkerBase*> workers;
  for (std::size_t i = 0; i < kArrays; ++i) {
    arrays.push_back(make_ints(100 + i));
    adders.push_back(std::make_unique<AddIntWorker>(DataIterator::partitions(arrays.back().meta(), 3)));
    workers.push_back(adders.back().get());
  }
  WorkerOrchestrator orchestrator{pool, workers};
  const pid_t worker = pool.worker_pid(0);
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  // Resume it once the run has queued what it can (the run cannot finish before); when does not matter.
  std::thread resume([worker] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(worker, SIGCONT);
  });
  try {
    (void)orchestrator.run_blocking();
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  resume.join();
  for (std::size_t i = 0; i < kArrays; ++i) {
    const auto n = static_cast<std::int64_t>(100 + i);
    EXPECT_EQ(adders[i]->total, n * (n + 1) / 2) << "array " << i;
  }
  EXPECT_EQ(pool.worker_pid(0), worker) << "the worker was replaced";
  run_sum(pool, arrays[0], 7);
}

// ---- a worker that scribbles over its result ring ------------------------------------------------------

/// In a worker process: the start of the read-write mpaio mapping (the channels; arrays are mapped
/// read-only), or nullptr.
std::byte* channel_mapping() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find("mpaio-") == std::string::npos) continue;
    const auto space = line.find(' ');
    if (space == std::string::npos || line.compare(space + 1, 2, "rw") != 0) continue;
    return reinterpret_cast<std::byte*>(std::stoull(line.substr(0, line.find('-')), nullptr, 16));
  }
  return nullptr;
}

/// In a worker process: its eventfd (the caller's wake-up), or -1.
int eventfd_descriptor() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (const dirent* entry = ::readdir(dir)) {
    char target[64] = {};
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    if (::readlink(link.c_str(), target, sizeof target - 1) > 0 && std::strstr(target, "eventfd") != nullptr) {
      found = std::atoi(entry->d_name);
    }
  }
  ::closedir(dir);
  return found;
}

constexpr std::int64_t kNoChannel = -2;
constexpr std::int64_t kNotFirst = -3;

/// In a worker process whose pool has one worker: publishes a malformed result record in the channel mapped
/// at `base` (as a memory-corrupting `process` might) and wakes the caller, then waits to be killed
/// (bounded: returns kGaveUp, which fails the test).
std::int64_t scribble_and_wait(std::byte* base) {
  const int wake = eventfd_descriptor();
  if (base == nullptr || wake < 0) return kNoChannel;
  auto& h = *reinterpret_cast<mpaio::detail::ChannelHeader*>(base);  // slot 0
  const std::uint64_t head = h.results.head.load();
  if (head != 0) return kNotFirst;
  std::byte* ring = base + sizeof(mpaio::detail::ChannelHeader);
  std::memset(ring, 0x77, 64);  // kind 0x77777777, size 0x77777777: no valid record
  h.results.head.store(64);
  ::eventfd_write(wake, 1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return mpaio_test::kGaveUp;
}

struct ScribbleWorker : mpaio::Worker<ScribbleWorker, std::int64_t> {
  using Worker::Worker;
  static std::int64_t process(mpaio::ArrayView<const std::int64_t>, mpaio::Range) {
    return scribble_and_wait(channel_mapping());
  }
  void process_callback(std::int64_t value) { values.push_back(value); }
  std::vector<std::int64_t> values;
};

/// Sends the caller a pool array the way a result does (a transfer in flight to the pool's owner), then
/// scribbles before any record could carry it.
struct TileScribbleWorker : mpaio::Worker<TileScribbleWorker, std::int64_t> {
  using Worker::Worker;
  using Params = std::string;  // the pool's name
  static std::int64_t process(mpaio::ArrayView<const std::int64_t>, mpaio::Range, const Params& pool_name) {
    std::byte* channel = channel_mapping();  // before the pool's segments are mapped here as well
    auto pool = mpaio::SharedMemoryPool::attach(pool_name);
    auto tile = pool.allocate<std::uint8_t>({64});
    std::vector<std::byte> encoded;
    mpaio::Codec<mpaio::PoolArray<std::uint8_t>>::encode(tile, encoded);
    return scribble_and_wait(channel);
  }
  void process_callback(std::int64_t) {}
};

TEST(ProcessPoolChannels, MalformedResultRecordKillsTheWorkerAndFailsTheRunWithoutHanging) {
  mpaio_test::Watchdog watchdog(60);
  ProcessPoolExecutor pool{{.workers = 1}};
  auto ints = make_ints(100);
  const pid_t scribbler = pool.worker_pid(0);
  {
    ScribbleWorker worker{DataIterator::partitions(ints.meta(), 1)};
    WorkerOrchestrator orchestrator{pool, {&worker}};
    try {
      (void)orchestrator.run_blocking();
      ADD_FAILURE() << "no WorkerCrashed; results: " << ::testing::PrintToString(worker.values);
    } catch (const mpaio::WorkerCrashed& e) {
      EXPECT_EQ(e.pid(), scribbler);
      EXPECT_NE(std::string(e.what()).find("signal 9"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(mpaio_test::poll_until([&] { return pool.worker_pid(0) != scribbler; }, std::chrono::seconds(10)))
      << "the scribbler was not replaced";
  run_sum(pool, ints, 10);
}

// Issue 11 item 11: a pool array a worker sent before its ring turned out malformed can never be read from
// the ring, so nothing adopts it; it used to stay in flight (its block in use) until the user called
// release_orphaned_transfers(). It is released once the worker is gone.
TEST(ProcessPoolChannels, PoolArraysSentByAWorkerWhoseRingWasMalformedAreReleased) {
  mpaio_test::Watchdog watchdog(60);
  ProcessPoolExecutor pool{{.workers = 1}};
  // Named: the worker attaches it by name, since it was made after the worker.
  mpaio::SharedMemoryPool tiles = mpaio::SharedMemoryPool::create({.kind = mpaio::SegmentKind::named});
  auto ints = make_ints(100);
  {
    TileScribbleWorker worker{DataIterator::partitions(ints.meta(), 1), tiles.name()};
    WorkerOrchestrator orchestrator{pool, {&worker}};
    EXPECT_THROW((void)orchestrator.run_blocking(), mpaio::WorkerCrashed);
  }
  EXPECT_TRUE(mpaio_test::poll_until(
      [&] {
        const mpaio::PoolStats stats = tiles.stats();
        return stats.in_flight == 0 && stats.blocks_in_use == 0;
      },
      std::chrono::seconds(10)))
      << "in flight: " << tiles.stats().in_flight << ", blocks in use: " << tiles.stats().blocks_in_use;
  run_sum(pool, ints, 10);
}

}  // namespace
