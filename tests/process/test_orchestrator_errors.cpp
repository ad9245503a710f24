// Failures are values with context: an exception in `process` (std:: or not), a throwing callback, a result
// over the pool's size limit, a worker killed by a signal or exiting mid-chunk: each reaches the caller of
// run() as the documented exception, naming the worker type, the chunk, the slot, the pid and the cause;
// and the same executor then completes a correct run. Every test runs under a Watchdog.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "../../examples/seed_workers.hpp"
#include "mpaio/mpaio.hpp"
#include "support/engine.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::ArrayView;
using mpaio::ChunkError;
using mpaio::DataIterator;
using mpaio::Range;
using mpaio::RunReport;
using mpaio::SharedArray;
using mpaio::WorkerCrashed;
using mpaio::WorkerOrchestrator;
using mpaio_test::ExecutorKind;

constexpr std::size_t kSize = 1000;
constexpr std::size_t kBadElement = 500;  // the chunk holding it fails

SharedArray<std::int64_t> make_ints(std::size_t n = kSize) {
  auto ints = SharedArray<std::int64_t>::create({n});
  std::iota(ints.begin(), ints.end(), 1);
  return ints;
}

bool holds_bad_element(Range chunk) { return chunk.start <= kBadElement && kBadElement < chunk.end; }

/// The chunk of `chunks` that holds kBadElement.
Range bad_chunk(const DataIterator& chunks) {
  for (Range r : chunks) {
    if (holds_bad_element(r)) return r;
  }
  return {};
}

std::string range_text(Range r) { return "[" + std::to_string(r.start) + ", " + std::to_string(r.end) + ")"; }

// ---- workers that fail -----------------------------------------------------------------------------------

struct RuntimeErrorWorker : mpaio::Worker<RuntimeErrorWorker, std::int64_t> {
  using Worker::Worker;
  static std::int64_t process(ArrayView<const std::int64_t> data, Range chunk) {
    if (holds_bad_element(chunk)) throw std::runtime_error("boom at element " + std::to_string(kBadElement));
    return AddIntWorker::process(data, chunk);
  }
  void process_callback(std::int64_t) { ++delivered; }
  std::size_t delivered = 0;
};

struct IntThrowingWorker : mpaio::Worker<IntThrowingWorker, std::int64_t> {
  using Worker::Worker;
  static std::int64_t process(ArrayView<const std::int64_t> data, Range chunk) {
    if (holds_bad_element(chunk)) throw 42;
    return AddIntWorker::process(data, chunk);
  }
  void process_callback(std::int64_t) {}
};

struct CustomFailure {
  int code;
};

struct CustomThrowingWorker : mpaio::Worker<CustomThrowingWorker, std::int64_t> {
  using Worker::Worker;
  static std::int64_t process(ArrayView<const std::int64_t> data, Range chunk) {
    if (holds_bad_element(chunk)) throw CustomFailure{7};
    return AddIntWorker::process(data, chunk);
  }
  void process_callback(std::int64_t) {}
};

struct ThrowingCallbackWorker : mpaio::Worker<ThrowingCallbackWorker, std::int64_t> {
  using Worker::Worker;
  static std::int64_t process(ArrayView<const std::int64_t> data, Range chunk) { return AddIntWorker::process(data, chunk); }
  void process_callback(std::int64_t, Range chunk) {
    if (holds_bad_element(chunk)) throw std::logic_error("callback refused chunk " + range_text(chunk));
  }
};

// ---- exceptions over every executor ---------------------------------------------------------------------------

using Param = std::tuple<ExecutorKind, std::size_t>;

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  return std::string(mpaio_test::kind_name(std::get<0>(info.param))) + std::to_string(std::get<1>(info.param));
}

class Failures : public ::testing::TestWithParam<Param> {
 protected:
  Failures() : executor_(mpaio_test::make_executor(kind(), std::get<1>(GetParam()))) {}
  [[nodiscard]] ExecutorKind kind() const { return std::get<0>(GetParam()); }

  /// Runs `worker` expecting a ChunkError (not a subclass) for the chunk holding kBadElement, and returns it.
  template <class W>
  ChunkError expect_chunk_error(W& worker) {
    WorkerOrchestrator orchestrator{*executor_, {&worker}};
    try {
      (void)orchestrator.run_blocking();
    } catch (const WorkerCrashed& e) {
      ADD_FAILURE() << "an exception is not a crash: " << e.what();
      return e;
    } catch (const ChunkError& e) {
      const std::string what = e.what();
      const Range expected = bad_chunk(worker.chunks());
      EXPECT_NE(what.find(worker.type_name()), std::string::npos) << what;
      EXPECT_NE(what.find(range_text(expected)), std::string::npos) << what;
      EXPECT_EQ(e.worker_type(), worker.type_name());
      EXPECT_EQ(e.range(), expected);
      EXPECT_LT(e.slot(), executor_->concurrency());
      if (auto* pool = dynamic_cast<mpaio::ProcessPoolExecutor*>(executor_.get())) {
        EXPECT_NE(e.pid(), ::getpid());
        EXPECT_EQ(e.pid(), pool->worker_pid(e.slot())) << "the pid of the worker that threw (it lives on)";
      } else {
        EXPECT_EQ(e.pid(), ::getpid());
      }
      return e;
    }
    ADD_FAILURE() << "run() did not throw";
    return ChunkError("", {}, 0, 0, "", "");
  }

  /// The executor completes a correct run after a failed one.
  void expect_next_run_correct() {
    auto ints = make_ints(10'000);
    AddIntWorker adder{DataIterator::partitions(ints.meta(), 16)};
    WorkerOrchestrator orchestrator{*executor_, {&adder}};
    const RunReport report = orchestrator.run_blocking();
    EXPECT_EQ(adder.total, 10'000 * 10'001 / 2);
    EXPECT_EQ(report.chunks.size(), 16U);
  }

  mpaio_test::Watchdog watchdog_{120};
  std::unique_ptr<mpaio::Executor> executor_;
};

TEST_P(Failures, StdExceptionBecomesAChunkErrorWithItsMessage) {
  auto ints = make_ints();
  RuntimeErrorWorker worker{DataIterator::partitions(ints.meta(), 7)};
  const ChunkError e = expect_chunk_error(worker);
  EXPECT_EQ(e.cause_type(), "std::runtime_error");
  EXPECT_EQ(e.cause(), "boom at element 500");
  EXPECT_NE(std::string(e.what()).find("std::runtime_error: boom at element 500"), std::string::npos) << e.what();
  EXPECT_LT(worker.delivered, 7U);
  expect_next_run_correct();
}

TEST_P(Failures, ThrownIntBecomesAChunkErrorNamingItsType) {
  auto ints = make_ints();
  IntThrowingWorker worker{DataIterator::chunks(ints.meta(), 100)};
  const ChunkError e = expect_chunk_error(worker);
  EXPECT_EQ(e.cause_type(), "int");
  EXPECT_NE(std::string(e.what()).find("int"), std::string::npos) << e.what();
  expect_next_run_correct();
}

TEST_P(Failures, ThrownCustomStructBecomesAChunkErrorNamingItsType) {
  auto ints = make_ints();
  CustomThrowingWorker worker{DataIterator::chunks(ints.meta(), 64)};
  const ChunkError e = expect_chunk_error(worker);
  EXPECT_NE(e.cause_type().find("CustomFailure"), std::string::npos) << e.cause_type();
  EXPECT_NE(std::string(e.what()).find("CustomFailure"), std::string::npos) << e.what();
  expect_next_run_correct();
}

TEST_P(Failures, FailureInOneWorkerTypeNamesThatType) {
  auto ints = make_ints();
  AddIntWorker good{DataIterator::partitions(ints.meta(), 5)};
  RuntimeErrorWorker bad{DataIterator::partitions(ints.meta(), 3)};
  WorkerOrchestrator orchestrator{*executor_, {&good, &bad}};
  try {
    (void)orchestrator.run_blocking();
    FAIL() << "no ChunkError";
  } catch (const ChunkError& e) {
    EXPECT_EQ(e.worker_type(), bad.type_name());
    EXPECT_NE(e.worker_type().find("RuntimeErrorWorker"), std::string::npos) << e.worker_type();
    EXPECT_EQ(e.range(), bad_chunk(bad.chunks()));
  }
  expect_next_run_correct();
}

TEST_P(Failures, ExceptionFromACallbackReachesTheCaller) {
  auto ints = make_ints();
  ThrowingCallbackWorker worker{DataIterator::partitions(ints.meta(), 9)};
  WorkerOrchestrator orchestrator{*executor_, {&worker}};
  try {
    (void)orchestrator.run_blocking();
    FAIL() << "no exception";
  } catch (const std::logic_error& e) {
    EXPECT_EQ(std::string(e.what()), "callback refused chunk " + range_text(bad_chunk(worker.chunks())));
  }
  expect_next_run_correct();
}

INSTANTIATE_TEST_SUITE_P(Executors, Failures,
                         ::testing::Values(Param{ExecutorKind::inline_, 1}, Param{ExecutorKind::thread, 2},
                                           Param{ExecutorKind::process, 1}, Param{ExecutorKind::process, 3}),
                         param_name);

// ---- a run abandoned mid-way --------------------------------------------------------------------------------

/// Chunk 0 returns at once and its callback stops the loop; the other chunks wait for a flag that is set
/// only after the loop (and with it the suspended run) has been destroyed, or never (process pool: the
/// pool must stop them itself).
struct AbandonWorker : mpaio::Worker<AbandonWorker, std::int32_t> {
  AbandonWorker(DataIterator chunks, asio::io_context& io) : Worker(std::move(chunks)), io_(io) {}
  static std::int32_t process(ArrayView<const std::int32_t> flags, Range chunk) {
    if (chunk.start == 0) return 0;
    return mpaio_test::wait_for_flag(flags.data(), [](std::int32_t v) { return v != 0; });
  }
  void process_callback(std::int32_t, Range chunk) {
    ++delivered;
    if (chunk.start == 0) io_.stop();
  }
  asio::io_context& io_;
  std::size_t delivered = 0;
};

TEST_P(Failures, DestroyingTheLoopOfASuspendedRunStopsItAndTheExecutorStaysUsable) {
  auto flags = SharedArray<std::int32_t>::create({64});
  std::size_t delivered = 0;
  bool completed = false;
  {
    auto io = std::make_unique<asio::io_context>();
    AbandonWorker worker{DataIterator::partitions(flags.meta(), 8), *io};
    WorkerOrchestrator orchestrator{*executor_, {&worker}};
    asio::co_spawn(*io, orchestrator.run(), [&](std::exception_ptr, RunReport) { completed = true; });
    io->run();  // returns when chunk 0's callback stops it, with the run suspended
    delivered = worker.delivered;
    if (kind() != ExecutorKind::process) {
      // A thread cannot be stopped from outside: let its waiting chunks finish, so that destroying the
      // run (which waits for running chunks) does not wait for the bound of their wait.
      mpaio_test::store_flag(&flags[0], 1);
    }
    io.reset();  // destroys the suspended run: the executor must stop it
  }
  EXPECT_EQ(delivered, 1U);
  EXPECT_FALSE(completed) << "the run completed although its loop was stopped after the first result";
  expect_next_run_correct();
}

// ---- the process pool: results over the size limit ------------------------------------------------------------

/// Returns its chunk as doubles: 8 bytes per element.
struct EchoDoublesWorker : mpaio::Worker<EchoDoublesWorker, std::vector<double>> {
  using Worker::Worker;
  static std::vector<double> process(ArrayView<const double> data, Range chunk) {
    const auto values = data.slice(chunk);
    return {values.begin(), values.end()};
  }
  void process_callback(std::vector<double> values, Range chunk) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (values[i] != static_cast<double>(chunk.start + i)) ++wrong;
    }
    received += values.size();
  }
  std::size_t received = 0;
  std::size_t wrong = 0;
};

SharedArray<double> make_doubles(std::size_t n) {
  auto doubles = SharedArray<double>::create({n});
  for (std::size_t i = 0; i < n; ++i) doubles[i] = static_cast<double>(i);
  return doubles;
}

TEST(ProcessPoolResults, ResultOverTheLimitFailsItsChunkNamingTheSize) {
  mpaio_test::Watchdog watchdog(60);
  mpaio::ProcessPoolExecutor pool{{.workers = 2, .max_result_bytes = 4096}};
  auto doubles = make_doubles(1000);
  {
    // [0, 600): 4800 bytes, over the limit; [600, 1000): 3200 bytes.
    EchoDoublesWorker worker{DataIterator::chunks(doubles.meta(), 600)};
    WorkerOrchestrator orchestrator{pool, {&worker}};
    try {
      (void)orchestrator.run_blocking();
      FAIL() << "no ChunkError";
    } catch (const WorkerCrashed& e) {
      FAIL() << "a result over the limit is not a crash: " << e.what();
    } catch (const ChunkError& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.range(), (Range{0, 600}));
      EXPECT_NE(what.find("4800"), std::string::npos) << what;
      EXPECT_NE(what.find("4096"), std::string::npos) << what;
      EXPECT_NE(what.find("max_result_bytes"), std::string::npos) << what;
    }
  }
  {
    // Exactly at the limit: 512 doubles are 4096 bytes.
    EchoDoublesWorker worker{DataIterator::chunks(doubles.meta(), 512)};
    WorkerOrchestrator orchestrator{pool, {&worker}};
    (void)orchestrator.run_blocking();
    EXPECT_EQ(worker.received, 1000U);
    EXPECT_EQ(worker.wrong, 0U);
  }
  auto ints = make_ints();
  AddIntWorker adder{DataIterator::partitions(ints.meta(), 10)};
  WorkerOrchestrator orchestrator{pool, {&adder}};
  (void)orchestrator.run_blocking();
  EXPECT_EQ(adder.total, 1000 * 1001 / 2);
}

TEST(ProcessPoolResults, LargeResultsWrapAroundTheResultRing) {
  mpaio_test::Watchdog watchdog(120);
  // Results of 800 KB against the default limit of 1 MiB: the ring holds two of them, so records wrap
  // (with padding) many times, and workers wait for the caller to free space.
  mpaio::ProcessPoolExecutor pool{{.workers = 2, .queue_depth = 4}};
  constexpr std::size_t kChunk = 100'000;
  auto doubles = make_doubles(40 * kChunk + 12'345);
  for (int run = 0; run < 2; ++run) {
    EchoDoublesWorker worker{DataIterator::chunks(doubles.meta(), kChunk - static_cast<std::size_t>(run) * 999)};
    WorkerOrchestrator orchestrator{pool, {&worker}};
    (void)orchestrator.run_blocking();
    EXPECT_EQ(worker.received, doubles.size());
    EXPECT_EQ(worker.wrong, 0U);
  }
}

// ---- the process pool: workers that die ------------------------------------------------------------------------

/// Chunk 0 returns at once; the others wait for the flag (element 0). The callback of chunk 0 kills the
/// victim worker with SIGKILL while it runs a waiting chunk, waits until it is dead, then sets the flag. It
/// first leaves the victim 200 ms to start that chunk: a worker killed between chunks is not blamed for any.
struct KillGateWorker : mpaio::Worker<KillGateWorker, std::int32_t> {
  KillGateWorker(DataIterator chunks, SharedArray<std::int32_t>& flags, mpaio::ProcessPoolExecutor& pool, std::size_t victim)
      : Worker(std::move(chunks)), flags_(flags), pool_(pool), victim_(victim) {}

  static std::int32_t process(ArrayView<const std::int32_t> flags, Range chunk) {
    if (chunk.start == 0) return 0;
    return mpaio_test::wait_for_flag(flags.data(), [](std::int32_t v) { return v != 0; });
  }

  void process_callback(std::int32_t, Range chunk) {
    if (chunk.start != 0) return;
    victim_pid = pool_.worker_pid(victim_);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, victim_pid, 0));
    ASSERT_GE(pidfd, 0);
    EXPECT_EQ(::kill(victim_pid, SIGKILL), 0);
    pollfd p{pidfd, POLLIN, 0};
    victim_died = ::poll(&p, 1, 10'000) == 1;  // readable once it has exited
    ::close(pidfd);
    mpaio_test::store_flag(&flags_[0], 1);  // let the other chunks finish
  }

  SharedArray<std::int32_t>& flags_;
  mpaio::ProcessPoolExecutor& pool_;
  std::size_t victim_;
  pid_t victim_pid = 0;
  bool victim_died = false;
};

class WorkerDeath : public ::testing::TestWithParam<std::size_t> {
 protected:
  mpaio_test::Watchdog watchdog_{120};
};

TEST_P(WorkerDeath, SigkillMidChunkThrowsWorkerCrashedAndThePoolRecovers) {
  const std::size_t workers = GetParam();
  mpaio::ProcessPoolExecutor pool{{.workers = workers}};
  auto flags = SharedArray<std::int32_t>::create({64});
  KillGateWorker worker{DataIterator::partitions(flags.meta(), 8), flags, pool, 0};
  {
    WorkerOrchestrator orchestrator{pool, {&worker}};
    try {
      (void)orchestrator.run_blocking();
      FAIL() << "no WorkerCrashed";
    } catch (const WorkerCrashed& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("signal 9"), std::string::npos) << what;
      EXPECT_NE(what.find("KillGateWorker"), std::string::npos) << what;
      EXPECT_EQ(e.pid(), worker.victim_pid);
      EXPECT_EQ(e.slot(), 0U);
      EXPECT_NE(e.range().start, 0U) << "chunk 0 had already succeeded";
      bool known = false;
      for (Range r : worker.chunks()) known = known || r == e.range();
      EXPECT_TRUE(known) << e.range();
      EXPECT_NE(what.find(range_text(e.range())), std::string::npos) << what;
    }
  }
  EXPECT_TRUE(worker.victim_died);
  pid_t replacement = worker.victim_pid;  // started asynchronously: during the run, or by now
  EXPECT_TRUE(mpaio_test::poll_until([&] { return (replacement = pool.worker_pid(0)) != worker.victim_pid; },
                                     std::chrono::seconds(10)));
  EXPECT_NE(replacement, worker.victim_pid) << "the dead worker was not replaced";
  EXPECT_EQ(::kill(replacement, 0), 0) << "the replacement is not alive";

  auto ints = make_ints(50'000);
  AddIntWorker adder{DataIterator::partitions(ints.meta(), 40)};
  WorkerOrchestrator orchestrator{pool, {&adder}};
  const RunReport report = orchestrator.run_blocking();
  EXPECT_EQ(adder.total, std::int64_t{50'000} * 50'001 / 2);
  std::set<pid_t> pids;
  for (std::size_t i = 0; i < workers; ++i) pids.insert(pool.worker_pid(i));
  mpaio_test::expect_report_covers(report, {&adder}, pids, workers);
}

TEST_P(WorkerDeath, WorkerKilledBetweenRunsIsReplacedBeforeTheNextRun) {
  const std::size_t workers = GetParam();
  mpaio::ProcessPoolExecutor pool{{.workers = workers}};
  auto ints = make_ints();
  {
    AddIntWorker adder{DataIterator::partitions(ints.meta(), 8)};
    WorkerOrchestrator orchestrator{pool, {&adder}};
    (void)orchestrator.run_blocking();
    EXPECT_EQ(adder.total, 1000 * 1001 / 2);
  }
  const pid_t victim = pool.worker_pid(workers - 1);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, victim, 0));
  ASSERT_GE(pidfd, 0);
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  pollfd p{pidfd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 10'000), 1);
  ::close(pidfd);
  AddIntWorker adder{DataIterator::partitions(ints.meta(), 8 * workers)};
  WorkerOrchestrator orchestrator{pool, {&adder}};
  const RunReport report = orchestrator.run_blocking();
  EXPECT_EQ(adder.total, 1000 * 1001 / 2);
  // Its replacement starts asynchronously when the run starts: during the run, or shortly after it.
  EXPECT_TRUE(mpaio_test::poll_until([&] { return pool.worker_pid(workers - 1) != victim; }, std::chrono::seconds(10)));
  EXPECT_NE(pool.worker_pid(workers - 1), victim);
  std::set<pid_t> pids;
  for (std::size_t i = 0; i < workers; ++i) pids.insert(pool.worker_pid(i));
  EXPECT_EQ(pids.count(victim), 0U);
  mpaio_test::expect_report_covers(report, {&adder}, pids, workers);
}

INSTANTIATE_TEST_SUITE_P(Workers, WorkerDeath, ::testing::Values(1U, 2U, 4U));

/// A chunk that kills its own process: by a signal, or by exiting.
template <int How>
struct SelfDestructWorker : mpaio::Worker<SelfDestructWorker<How>, std::int64_t> {
  using mpaio::Worker<SelfDestructWorker<How>, std::int64_t>::Worker;
  static std::int64_t process(ArrayView<const std::int64_t> data, Range chunk) {
    if (holds_bad_element(chunk)) {
      if constexpr (How == 0) std::raise(SIGSEGV);
      std::_Exit(3);
    }
    return AddIntWorker::process(data, chunk);
  }
  void process_callback(std::int64_t) {}
};

template <class W>
void expect_crash(const char* cause) {
  mpaio_test::Watchdog watchdog(60);
  mpaio::ProcessPoolExecutor pool{{.workers = 2}};
  auto ints = make_ints();
  W worker{DataIterator::partitions(ints.meta(), 10)};
  {
    WorkerOrchestrator orchestrator{pool, {&worker}};
    try {
      (void)orchestrator.run_blocking();
      ADD_FAILURE() << "no WorkerCrashed";
    } catch (const WorkerCrashed& e) {
      EXPECT_NE(std::string(e.what()).find(cause), std::string::npos) << e.what();
      EXPECT_EQ(e.range(), bad_chunk(worker.chunks()));
      EXPECT_NE(e.pid(), ::getpid());
    }
  }
  AddIntWorker adder{DataIterator::partitions(ints.meta(), 10)};
  WorkerOrchestrator orchestrator{pool, {&adder}};
  (void)orchestrator.run_blocking();
  EXPECT_EQ(adder.total, 1000 * 1001 / 2);
}

TEST(WorkerDeathCause, SegfaultIsReportedWithItsSignal) { expect_crash<SelfDestructWorker<0>>("signal 11"); }
TEST(WorkerDeathCause, ExitIsReportedWithItsCode) { expect_crash<SelfDestructWorker<1>>("exited with code 3"); }

}  // namespace
