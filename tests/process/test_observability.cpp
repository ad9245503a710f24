// Worker logs, recycling (max_chunks_per_worker), CPU pinning and the StopToken, on real processes.
#include <sched.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "mpaio/mpaio.hpp"
#include "support/watchdog.hpp"

namespace {

/// Keeps every line the caller's default logger receives.
class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::pair<spdlog::level::level_enum, std::string>> lines;

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    lines.emplace_back(msg.level, std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}
};

mpaio::SharedArray<std::int64_t> iota_array(std::size_t n) {
  std::vector<std::int64_t> values(n);
  std::iota(values.begin(), values.end(), 0);
  return mpaio::SharedArray<std::int64_t>::from(values);
}

struct LoggingWorker : mpaio::Worker<LoggingWorker, int> {
  using Worker::Worker;
  static int process(mpaio::ArrayView<const std::int64_t>, mpaio::Range chunk) {
    spdlog::debug("debug line for chunk {}", chunk.start);
    spdlog::info("chunk {} first", chunk.start);
    spdlog::warn("chunk {} second", chunk.start);
    return ::getpid();
  }
  void process_callback(int pid) { pids.insert(pid); }
  std::set<int> pids;
};

struct PidWorker : mpaio::Worker<PidWorker, std::array<int, 2>> {  // {pid, the one CPU it may run on or -1}
  using Worker::Worker;
  static std::array<int, 2> process(mpaio::ArrayView<const std::int64_t>, mpaio::Range) {
    cpu_set_t set;
    CPU_ZERO(&set);
    ::sched_getaffinity(0, sizeof set, &set);
    int only = -1;
    if (CPU_COUNT(&set) == 1) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &set)) only = c;
      }
    }
    return {::getpid(), only};
  }
  void process_callback(std::array<int, 2> r, mpaio::Range chunk) { seen[chunk.start] = r; }
  std::map<std::size_t, std::array<int, 2>> seen;
};

/// Counts its chunk slowly, and stops early when the run is cancelled.
struct StoppableWorker : mpaio::Worker<StoppableWorker, std::array<std::uint64_t, 2>> {  // {counted, stopped}
  using Worker::Worker;
  static std::array<std::uint64_t, 2> process(mpaio::ArrayView<const std::int64_t>, mpaio::Range chunk,
                                              const mpaio::StopToken& stop) {
    std::uint64_t counted = 0;
    for (std::size_t i = chunk.start; i < chunk.end; ++i) {
      if (stop.stop_requested()) return {counted, 1};
      ::usleep(1000);
      ++counted;
    }
    return {counted, 0};
  }
  void process_callback(std::array<std::uint64_t, 2> r) {
    counted += r[0];
    stopped += r[1];
    ++results;
  }
  std::uint64_t counted = 0;
  std::uint64_t stopped = 0;
  std::uint64_t results = 0;
};

}  // namespace

TEST(Observability, WorkerLogLinesReachTheCallerTaggedInOrderAtTheCallersLevel) {
  mpaio_test::Watchdog watchdog(60);
  auto sink = std::make_shared<CaptureSink>();
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  spdlog::set_level(spdlog::level::info);
  {
    mpaio::ProcessPoolExecutor pool{{.workers = 2}};
    auto array = iota_array(40);
    LoggingWorker worker{mpaio::DataIterator::chunks(array.meta(), 4)};
    mpaio::WorkerOrchestrator{pool, {&worker}}.run_blocking();

    std::map<int, std::vector<std::string>> per_pid;
    for (const auto& [level, text] : sink->lines) {
      EXPECT_NE(level, spdlog::level::debug) << "debug is below the caller's level: " << text;
      const auto tag_end = text.find("] ");
      ASSERT_EQ(text.rfind("[mpaio-w", 0), 0U) << text;
      ASSERT_NE(tag_end, std::string::npos) << text;
      const int pid = std::stoi(text.substr(text.find("pid ") + 4));
      EXPECT_EQ(worker.pids.count(pid), 1U) << "the tag names the worker's pid: " << text;
      per_pid[pid].push_back(text.substr(tag_end + 2));
    }
    std::size_t total = 0;
    for (const auto& [pid, texts] : per_pid) {
      total += texts.size();
      for (std::size_t i = 0; i + 1 < texts.size(); i += 2) {  // in order per worker: first, then second
        EXPECT_NE(texts[i].find("first"), std::string::npos) << texts[i];
        EXPECT_NE(texts[i + 1].find("second"), std::string::npos) << texts[i + 1];
        EXPECT_EQ(texts[i].substr(0, texts[i].find(' ', 6)), texts[i + 1].substr(0, texts[i + 1].find(' ', 6)));
      }
    }
    EXPECT_EQ(total, 2U * 10U) << "two lines at info or above per chunk";

    sink->lines.clear();
    spdlog::set_level(spdlog::level::err);  // the next run's workers take the new level
    mpaio::WorkerOrchestrator{pool, {&worker}}.run_blocking();
    EXPECT_TRUE(sink->lines.empty()) << sink->lines.front().second;
  }
  spdlog::set_default_logger(previous);
  spdlog::set_level(spdlog::level::info);
}

TEST(Observability, MaxChunksPerWorkerRecyclesWorkerProcesses) {
  mpaio_test::Watchdog watchdog(60);
  mpaio::ProcessPoolExecutor pool{{.workers = 2, .max_chunks_per_worker = 3}};
  auto array = iota_array(30);
  PidWorker worker{mpaio::DataIterator::chunks(array.meta(), 1)};
  mpaio::WorkerOrchestrator{pool, {&worker}}.run_blocking();
  ASSERT_EQ(worker.seen.size(), 30U);
  std::map<int, int> chunks_per_pid;
  for (const auto& [start, r] : worker.seen) ++chunks_per_pid[r[0]];
  EXPECT_GE(chunks_per_pid.size(), 10U) << "30 chunks, at most 3 per process";
  for (const auto& [pid, n] : chunks_per_pid) EXPECT_LE(n, 3) << "pid " << pid;
  // And a second run still works on the replacements.
  worker.seen.clear();
  mpaio::WorkerOrchestrator{pool, {&worker}}.run_blocking();
  EXPECT_EQ(worker.seen.size(), 30U);
}

TEST(Observability, PinnedWorkersRunOnTheirCpu) {
  mpaio_test::Watchdog watchdog(60);
  const int cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  mpaio::ProcessPoolExecutor pool{{.workers = 2, .pin_workers = true}};
  auto array = iota_array(8);
  PidWorker worker{mpaio::DataIterator::chunks(array.meta(), 1)};
  mpaio::WorkerOrchestrator{pool, {&worker}}.run_blocking();
  for (std::size_t slot = 0; slot < 2; ++slot) {
    const int pid = pool.worker_pid(slot);
    for (const auto& [start, r] : worker.seen) {
      if (r[0] == pid) {
        EXPECT_EQ(r[1], static_cast<int>(slot) % cpus) << "worker " << slot;
      }
    }
  }
  // A given CPU list.
  mpaio::ProcessPoolExecutor listed{{.workers = 2, .pin_workers = true, .cpus = {0}}};
  worker.seen.clear();
  mpaio::WorkerOrchestrator{listed, {&worker}}.run_blocking();
  for (const auto& [start, r] : worker.seen) EXPECT_EQ(r[1], 0);
  EXPECT_THROW(mpaio::ProcessPoolExecutor({.workers = 1, .pin_workers = true, .cpus = {-1}}), mpaio::InvalidArgument);
}

TEST(Observability, StopTokenLetsCancelledChunksReturnPartialResults) {
  mpaio_test::Watchdog watchdog(60);
  mpaio::ProcessPoolExecutor pool{{.workers = 2}};
  auto array = iota_array(20000);  // 2 chunks of 10,000 ms each if nothing stops them
  StoppableWorker worker{mpaio::DataIterator::partitions(array.meta(), 2)};
  mpaio::WorkerOrchestrator orchestrator{pool, {&worker}, {.cancel_grace = std::chrono::milliseconds(2000)}};
  asio::io_context io;
  asio::cancellation_signal cancel;
  asio::steady_timer timer(io, std::chrono::milliseconds(300));
  timer.async_wait([&](std::error_code) { cancel.emit(asio::cancellation_type::terminal); });
  std::exception_ptr error;
  asio::co_spawn(io, orchestrator.run(),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, mpaio::RunReport) { error = e; }));
  const auto start = std::chrono::steady_clock::now();
  io.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  ASSERT_TRUE(error);
  EXPECT_THROW(std::rethrow_exception(error), mpaio::RunCancelled);
  EXPECT_EQ(worker.results, 2U) << "both chunks returned within the grace period";
  EXPECT_EQ(worker.stopped, 2U) << "both saw the token";
  EXPECT_GT(worker.counted, 0U);
  EXPECT_LT(worker.counted, 20000U) << "partial";

  // Without a token check, the inline executor's flag still reads false in a normal run.
  worker.counted = worker.stopped = worker.results = 0;
  auto small = iota_array(10);
  StoppableWorker quick{mpaio::DataIterator::chunks(small.meta(), 5)};
  mpaio::WorkerOrchestrator{pool, {&quick}}.run_blocking();
  EXPECT_EQ(quick.counted, 10U);
  EXPECT_EQ(quick.stopped, 0U);
}
