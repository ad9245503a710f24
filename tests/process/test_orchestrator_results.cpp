// WorkerOrchestrator over the three executors: the same runs give the same results, whatever the
// executor, the worker count and the chunk count; callbacks run on the loop thread and get their chunk;
// init() runs once per process; results of every codec kind arrive intact; bad input is rejected before
// dispatch. Every test that starts processes runs under a Watchdog.
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include "../../examples/seed_workers.hpp"
#include "mpaio/mpaio.hpp"
#include "support/engine.hpp"
#include "support/proc.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::ArrayView;
using mpaio::DataIterator;
using mpaio::Range;
using mpaio::RunReport;
using mpaio::SharedArray;
using mpaio::WorkerOrchestrator;
using mpaio_test::ExecutorKind;

constexpr std::size_t kInts = 100'000;
constexpr std::size_t kStrings = 100;

SharedArray<std::int64_t> make_ints(std::size_t n, mpaio::SegmentOptions options = {}) {
  auto ints = SharedArray<std::int64_t>::create({n}, options);
  std::iota(ints.begin(), ints.end(), 1);
  return ints;
}

SharedArray<Str6> make_strings() {
  auto strings = SharedArray<Str6>::create({kStrings});
  for (std::size_t i = 0; i < kStrings; ++i) strings[i] = Str6("foo_" + std::to_string(i));
  return strings;
}

std::string expected_concatenation() {
  std::string out;
  for (std::size_t i = 0; i < kStrings; ++i) out += "foo_" + std::to_string(i);
  return out;
}

// ---- workers of the tests ------------------------------------------------------------------------------------

/// A POD result that echoes the chunk `process` saw, and the first element of it.
struct EchoedRange {
  std::uint64_t start;
  std::uint64_t end;
  std::int64_t first;
};

struct RangeEchoWorker : mpaio::Worker<RangeEchoWorker, EchoedRange> {
  using Worker::Worker;
  static EchoedRange process(ArrayView<const std::int64_t> data, Range chunk) {
    return {chunk.start, chunk.end, chunk.empty() ? -1 : data[chunk.start]};
  }
  void process_callback(EchoedRange echoed, Range chunk) {
    if (echoed.start != chunk.start || echoed.end != chunk.end) ++mismatches;
    if (echoed.first != static_cast<std::int64_t>(chunk.start) + 1) ++wrong_first;
    seen.push_back(chunk);
  }
  std::vector<Range> seen;
  int mismatches = 0;
  int wrong_first = 0;
};

/// std::vector<double> results: each chunk doubled.
struct DoubleWorker : mpaio::Worker<DoubleWorker, std::vector<double>> {
  using Worker::Worker;
  static std::vector<double> process(ArrayView<const double> data, Range chunk) {
    std::vector<double> out;
    for (double v : data.slice(chunk)) out.push_back(2 * v);
    return out;
  }
  void process_callback(std::vector<double> values, Range chunk) {
    if (values.size() != chunk.size()) ++wrong_sizes;
    pieces[chunk.start] = std::move(values);
  }
  std::map<std::size_t, std::vector<double>> pieces;
  int wrong_sizes = 0;
};

/// A user type that travels through cereal.
struct ChunkSummary {
  std::string label;
  std::vector<std::int64_t> head;  // the first (up to) three values
  std::int64_t sum = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(label, head, sum);
  }
};

struct SummaryWorker : mpaio::Worker<SummaryWorker, ChunkSummary> {
  using Worker::Worker;
  static ChunkSummary process(ArrayView<const std::int64_t> data, Range chunk) {
    ChunkSummary s;
    s.label = "chunk [" + std::to_string(chunk.start) + ", " + std::to_string(chunk.end) + ")";
    for (std::int64_t v : data.slice(chunk)) {
      if (s.head.size() < 3) s.head.push_back(v);
      s.sum += v;
    }
    return s;
  }
  void process_callback(ChunkSummary s, Range chunk) { summaries[chunk.start] = std::move(s); }
  std::map<std::size_t, ChunkSummary> summaries;
};

/// What a worker process reports about init().
struct InitSeen {
  pid_t pid;          // the process that ran the chunk
  std::int32_t calls; // how many times init() ran in that process
  pid_t init_pid;     // the process that last ran init()
};

/// A worker with init(); each Tag is a separate type, with its own per-process state.
template <int Tag>
struct InitWorker : mpaio::Worker<InitWorker<Tag>, InitSeen> {
  using mpaio::Worker<InitWorker<Tag>, InitSeen>::Worker;
  // A forked process inherits these from its parent: calls are counted per process (init_pid's).
  static inline std::int32_t init_calls = 0;
  static inline pid_t init_pid = 0;
  static void init() {
    if (init_pid != ::getpid()) init_calls = 0;
    init_pid = ::getpid();
    ++init_calls;
  }
  static InitSeen process(ArrayView<const std::int64_t>, Range) {
    return {::getpid(), init_pid == ::getpid() ? init_calls : 0, init_pid};
  }
  void process_callback(InitSeen seen) { results.push_back(seen); }
  std::vector<InitSeen> results;
};

/// Records the thread every callback runs on.
struct ThreadRecordingWorker : mpaio::Worker<ThreadRecordingWorker, std::int64_t> {
  using Worker::Worker;
  static std::int64_t process(ArrayView<const std::int64_t> data, Range chunk) {
    return AddIntWorker::process(data, chunk);
  }
  void process_callback(std::int64_t partial) {
    total += partial;
    threads.insert(std::this_thread::get_id());
    ++calls;
  }
  std::int64_t total = 0;
  std::size_t calls = 0;
  std::set<std::thread::id> threads;
};

// ---- the executor sweep ----------------------------------------------------------------------------------------

using Param = std::tuple<ExecutorKind, std::size_t>;

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  return std::string(mpaio_test::kind_name(std::get<0>(info.param))) + std::to_string(std::get<1>(info.param));
}

class Orchestrator : public ::testing::TestWithParam<Param> {
 protected:
  Orchestrator() : executor_(mpaio_test::make_executor(kind(), workers())) {}

  [[nodiscard]] ExecutorKind kind() const { return std::get<0>(GetParam()); }
  [[nodiscard]] std::size_t workers() const { return std::get<1>(GetParam()); }
  [[nodiscard]] mpaio::Executor& executor() { return *executor_; }
  [[nodiscard]] std::size_t concurrency() const { return kind() == ExecutorKind::inline_ ? 1 : workers(); }
  mpaio::ProcessPoolExecutor* pool() { return dynamic_cast<mpaio::ProcessPoolExecutor*>(executor_.get()); }

  /// The pids that may run chunks: the pool's workers, or this process.
  std::set<pid_t> chunk_pids() {
    std::set<pid_t> pids;
    if (auto* p = pool()) {
      for (std::size_t i = 0; i < workers(); ++i) pids.insert(p->worker_pid(i));
      EXPECT_EQ(pids.count(::getpid()), 0U) << "a worker process must not be the caller";
      EXPECT_EQ(pids.size(), workers()) << "worker pids must be distinct";
    } else {
      pids.insert(::getpid());
    }
    return pids;
  }

  mpaio_test::Watchdog watchdog_{120};  // constructed before the executor, destroyed after it
  std::unique_ptr<mpaio::Executor> executor_;
};

TEST_P(Orchestrator, SeedWorkersGiveTheSameResultsForEveryChunkCount) {
  auto ints = make_ints(kInts);
  auto strings = make_strings();
  const std::set<pid_t> pids = chunk_pids();
  for (std::size_t chunks : {1U, 2U, 7U, 100U, 10'000U}) {
    SCOPED_TRACE("chunks " + std::to_string(chunks));
    AddIntWorker adder{DataIterator::partitions(ints.meta(), chunks)};
    ConcatStrWorker concat{DataIterator::partitions(strings.meta(), chunks)};
    ASSERT_EQ(adder.chunks().size(), chunks);
    ASSERT_EQ(concat.chunks().size(), std::min<std::size_t>(chunks, kStrings));
    WorkerOrchestrator orchestrator{executor(), {&adder, &concat}};
    const RunReport report = orchestrator.run_blocking();
    EXPECT_EQ(adder.total, static_cast<std::int64_t>(kInts * (kInts + 1) / 2));
    EXPECT_EQ(concat.result(), expected_concatenation());
    EXPECT_EQ(report.executor, std::string(executor().name()));
    mpaio_test::expect_report_covers(report, {&adder, &concat}, pids, concurrency());
  }
  EXPECT_EQ(chunk_pids(), pids) << "no worker was replaced";
}

TEST_P(Orchestrator, ChunksBySizeFromAStartIndex) {
  auto ints = make_ints(10'001);
  AddIntWorker adder{DataIterator::chunks(ints.meta(), 333, 1)};  // skips element 0 (value 1)
  WorkerOrchestrator orchestrator{executor(), {&adder}};
  const RunReport report = orchestrator.run_blocking();
  EXPECT_EQ(adder.total, std::int64_t{10'001} * 10'002 / 2 - 1);
  mpaio_test::expect_report_covers(report, {&adder}, chunk_pids(), concurrency());
}

TEST_P(Orchestrator, CallbacksRunOnTheLoopThread) {
  auto ints = make_ints(kInts);
  ThreadRecordingWorker worker{DataIterator::partitions(ints.meta(), 64)};
  WorkerOrchestrator orchestrator{executor(), {&worker}};
  asio::io_context io;
  std::exception_ptr error;
  bool completed = false;
  asio::co_spawn(io, orchestrator.run(), [&](std::exception_ptr e, RunReport) {
    error = e;
    completed = true;
  });
  std::thread::id loop_thread;
  std::thread runner([&] {
    loop_thread = std::this_thread::get_id();
    io.run();
  });
  runner.join();
  ASSERT_TRUE(completed);
  ASSERT_FALSE(error);
  EXPECT_EQ(worker.total, static_cast<std::int64_t>(kInts * (kInts + 1) / 2));
  EXPECT_EQ(worker.calls, 64U);
  ASSERT_EQ(worker.threads.size(), 1U) << "callbacks ran on several threads";
  EXPECT_EQ(*worker.threads.begin(), loop_thread);
  EXPECT_NE(loop_thread, std::this_thread::get_id());
}

TEST_P(Orchestrator, TwoArgumentCallbackGetsItsChunkAndPodResultsArriveIntact) {
  auto ints = make_ints(1000);
  RangeEchoWorker worker{DataIterator::partitions(ints.meta(), 37)};
  WorkerOrchestrator orchestrator{executor(), {&worker}};
  (void)orchestrator.run_blocking();
  EXPECT_EQ(worker.mismatches, 0);
  EXPECT_EQ(worker.wrong_first, 0);
  std::vector<Range> expected(worker.chunks().begin(), worker.chunks().end());
  std::vector<Range> seen = worker.seen;
  std::sort(seen.begin(), seen.end(), [](Range a, Range b) { return a.start < b.start; });
  EXPECT_EQ(seen, expected);
}

TEST_P(Orchestrator, VectorOfDoubleResults) {
  auto doubles = SharedArray<double>::create({5000});
  for (std::size_t i = 0; i < doubles.size(); ++i) doubles[i] = static_cast<double>(i) * 0.5;
  DoubleWorker worker{DataIterator::chunks(doubles.meta(), 128)};
  WorkerOrchestrator orchestrator{executor(), {&worker}};
  (void)orchestrator.run_blocking();
  EXPECT_EQ(worker.wrong_sizes, 0);
  std::vector<double> all;
  for (const auto& [start, piece] : worker.pieces) all.insert(all.end(), piece.begin(), piece.end());
  ASSERT_EQ(all.size(), 5000U);
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], static_cast<double>(i)) << "element " << i;
}

TEST_P(Orchestrator, CerealUserTypeResults) {
  auto ints = make_ints(1000);
  SummaryWorker worker{DataIterator::chunks(ints.meta(), 100)};
  WorkerOrchestrator orchestrator{executor(), {&worker}};
  (void)orchestrator.run_blocking();
  ASSERT_EQ(worker.summaries.size(), 10U);
  std::int64_t total = 0;
  for (const auto& [start, s] : worker.summaries) {
    EXPECT_EQ(s.label, "chunk [" + std::to_string(start) + ", " + std::to_string(start + 100) + ")");
    const auto first = static_cast<std::int64_t>(start) + 1;
    EXPECT_EQ(s.head, (std::vector<std::int64_t>{first, first + 1, first + 2}));
    total += s.sum;
  }
  EXPECT_EQ(total, 1000 * 1001 / 2);
}

TEST_P(Orchestrator, InitRunsOnceInEachProcessBeforeItsFirstChunk) {
  auto ints = make_ints(1000);
  std::set<pid_t> seen_pids;
  for (int run = 0; run < 2; ++run) {
    InitWorker<1> worker{DataIterator::partitions(ints.meta(), 50)};
    WorkerOrchestrator orchestrator{executor(), {&worker}};
    (void)orchestrator.run_blocking();
    ASSERT_EQ(worker.results.size(), 50U);
    for (const InitSeen& seen : worker.results) {
      EXPECT_EQ(seen.calls, 1) << "run " << run << ", pid " << seen.pid;
      EXPECT_EQ(seen.init_pid, seen.pid) << "init() did not run in the process that ran the chunk";
      seen_pids.insert(seen.pid);
    }
  }
  const std::set<pid_t> allowed = chunk_pids();
  for (pid_t pid : seen_pids) EXPECT_EQ(allowed.count(pid), 1U) << "pid " << pid;
}

TEST_P(Orchestrator, MismatchedElementTypeIsRejectedBeforeDispatch) {
  auto doubles = SharedArray<double>::create({100});
  auto ints = make_ints(100);
  AddIntWorker good{DataIterator::partitions(ints.meta(), 4)};
  AddIntWorker wrong{DataIterator::partitions(doubles.meta(), 4)};  // reads int64, the array holds <f8
  {
    WorkerOrchestrator orchestrator{executor(), {&good, &wrong}};
    try {
      (void)orchestrator.run_blocking();
      FAIL() << "no InvalidArgument";
    } catch (const mpaio::InvalidArgument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("AddIntWorker"), std::string::npos) << what;
      EXPECT_NE(what.find("<f8"), std::string::npos) << what;
    }
  }
  EXPECT_EQ(good.total, 0) << "a chunk was dispatched before the check";
  WorkerOrchestrator orchestrator{executor(), {&good}};
  (void)orchestrator.run_blocking();
  EXPECT_EQ(good.total, 100 * 101 / 2);
}

TEST_P(Orchestrator, EmptyArrayGivesZeroChunksAndTheRunCompletes) {
  auto ints = make_ints(10);
  mpaio::ArrayMeta empty = ints.meta();
  empty.shape = {0};
  AddIntWorker nothing{DataIterator::partitions(empty, 4)};
  ASSERT_EQ(nothing.chunks().size(), 0U);
  {
    WorkerOrchestrator orchestrator{executor(), {&nothing}};
    const RunReport report = orchestrator.run_blocking();
    EXPECT_TRUE(report.chunks.empty());
    EXPECT_EQ(nothing.total, 0);
  }
  AddIntWorker some{DataIterator::partitions(ints.meta(), 3)};
  WorkerOrchestrator orchestrator{executor(), {&nothing, &some}};
  const RunReport report = orchestrator.run_blocking();
  EXPECT_EQ(some.total, 55);
  mpaio_test::expect_report_covers(report, {&nothing, &some}, chunk_pids(), concurrency());
}

TEST_P(Orchestrator, RunFromAUserCoroutine) {
  auto ints = make_ints(kInts);
  auto strings = make_strings();
  asio::io_context io;
  std::int64_t first_total = 0;
  std::string second_text;
  std::size_t reported = 0;
  bool finished = false;
  auto user = [&]() -> asio::awaitable<void> {
    AddIntWorker adder{DataIterator::partitions(ints.meta(), 10)};
    WorkerOrchestrator first{executor(), {&adder}};
    const RunReport r1 = co_await first.run();
    first_total = adder.total;
    ConcatStrWorker concat{DataIterator::chunks(strings.meta(), 9)};
    WorkerOrchestrator second{executor(), {&concat}};
    const RunReport r2 = co_await second.run();
    second_text = concat.result();
    reported = r1.chunks.size() + r2.chunks.size();
  };
  asio::co_spawn(io, user(), [&](std::exception_ptr e) {
    EXPECT_FALSE(e);
    finished = true;
  });
  io.run();
  ASSERT_TRUE(finished);
  EXPECT_EQ(first_total, static_cast<std::int64_t>(kInts * (kInts + 1) / 2));
  EXPECT_EQ(second_text, expected_concatenation());
  EXPECT_EQ(reported, 10U + 12U);
}

TEST_P(Orchestrator, TwoWorkersOverTheSameArray) {
  auto ints = make_ints(kInts);
  AddIntWorker adder{DataIterator::partitions(ints.meta(), 13)};
  RangeEchoWorker echo{DataIterator::chunks(ints.meta(), 999)};
  WorkerOrchestrator orchestrator{executor(), {&adder, &echo}};
  const RunReport report = orchestrator.run_blocking();
  EXPECT_EQ(adder.total, static_cast<std::int64_t>(kInts * (kInts + 1) / 2));
  EXPECT_EQ(echo.mismatches, 0);
  EXPECT_EQ(echo.wrong_first, 0);
  mpaio_test::expect_report_covers(report, {&adder, &echo}, chunk_pids(), concurrency());
}

TEST_P(Orchestrator, ArrayAtAnOffsetInItsSegment) {
  auto ints = make_ints(1000);
  mpaio::ArrayMeta tail = ints.meta();  // elements 10..999 (values 11..1000), 80 bytes into the segment
  tail.offset = 10 * sizeof(std::int64_t);
  tail.shape = {990};
  AddIntWorker adder{DataIterator::partitions(tail, 7)};
  WorkerOrchestrator orchestrator{executor(), {&adder}};
  (void)orchestrator.run_blocking();
  EXPECT_EQ(adder.total, 1000 * 1001 / 2 - 10 * 11 / 2);
}

TEST_P(Orchestrator, TwoDimensionalArrayByRows) {
  auto grid = SharedArray<std::int64_t>::create({100, 10});
  std::iota(grid.begin(), grid.end(), 1);
  AddIntWorker adder{DataIterator::rows(grid.meta(), 7)};
  ASSERT_EQ(adder.chunks().size(), 15U);
  WorkerOrchestrator orchestrator{executor(), {&adder}};
  const RunReport report = orchestrator.run_blocking();
  EXPECT_EQ(adder.total, 1000 * 1001 / 2);
  for (const auto& c : report.chunks) {
    EXPECT_EQ(c.range.start % 70, 0U) << c.range;  // whole rows of 10 elements, 7 rows a chunk
  }
}

TEST_P(Orchestrator, NamedArrayThisProcessDoesNotHoldIsAttachedForTheRun) {
  // Like an array numpy created: only its meta is known here; the run attaches it by name.
  mpaio::ArrayMeta meta;
  {
    auto ints = make_ints(5000, {.kind = mpaio::SegmentKind::named, .keep = true});
    meta = ints.meta();
  }
  struct Unlink {
    std::string name;
    ~Unlink() { ::shm_unlink(name.c_str()); }
  } unlink{meta.shm_name};
  AddIntWorker adder{DataIterator::partitions(meta, 9)};
  WorkerOrchestrator orchestrator{executor(), {&adder}};
  (void)orchestrator.run_blocking();
  EXPECT_EQ(adder.total, 5000 * 5001 / 2);
}

TEST_P(Orchestrator, ManyRunsOverFreshArrays) {
  // Every run uses new segments; a worker process maps each and must let go of those destroyed since.
  for (int run = 0; run < 30; ++run) {
    auto ints = make_ints(1000 + static_cast<std::size_t>(run));
    AddIntWorker adder{DataIterator::partitions(ints.meta(), 5)};
    WorkerOrchestrator orchestrator{executor(), {&adder}};
    (void)orchestrator.run_blocking();
    const auto n = static_cast<std::int64_t>(ints.size());
    ASSERT_EQ(adder.total, n * (n + 1) / 2) << "run " << run;
  }
  if (auto* p = pool()) {
    for (std::size_t i = 0; i < workers(); ++i) {
      const std::size_t mapped = mpaio_test::mapped_segments(p->worker_pid(i));
      EXPECT_GE(mapped, 1U) << "worker " << i << ": its channel segment at least is mapped";
      EXPECT_LE(mapped, 3U) << "worker " << i << " keeps the mappings of destroyed arrays";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Executors, Orchestrator,
                         ::testing::Values(Param{ExecutorKind::inline_, 1}, Param{ExecutorKind::thread, 1},
                                           Param{ExecutorKind::thread, 2}, Param{ExecutorKind::thread, 4},
                                           Param{ExecutorKind::process, 1}, Param{ExecutorKind::process, 2},
                                           Param{ExecutorKind::process, 4}),
                         param_name);

// ---- across executors ------------------------------------------------------------------------------------------

TEST(OrchestratorAcrossExecutors, AllThreeExecutorsAgree) {
  mpaio_test::Watchdog watchdog(120);
  // The process pool first: it forks before this test starts any thread.
  mpaio::ProcessPoolExecutor process_pool{{.workers = 3}};
  mpaio::ThreadPoolExecutor thread_pool{{.workers = 3}};
  mpaio::InlineExecutor inline_executor;
  auto ints = make_ints(kInts, {.kind = mpaio::SegmentKind::named});
  auto strings = make_strings();
  struct Outcome {
    std::int64_t sum;
    std::string text;
    std::vector<std::pair<std::size_t, Range>> ranges;
  };
  std::vector<Outcome> outcomes;
  for (mpaio::Executor* executor : std::initializer_list<mpaio::Executor*>{&inline_executor, &thread_pool, &process_pool}) {
    AddIntWorker adder{DataIterator::chunks(ints.meta(), 777)};
    ConcatStrWorker concat{DataIterator::chunks(strings.meta(), 7)};
    WorkerOrchestrator orchestrator{*executor, {&adder, &concat}};
    const RunReport report = orchestrator.run_blocking();
    Outcome o{adder.total, concat.result(), {}};
    for (const auto& c : report.chunks) o.ranges.emplace_back(c.worker, c.range);
    std::sort(o.ranges.begin(), o.ranges.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second.start < b.second.start;
    });
    outcomes.push_back(std::move(o));
  }
  EXPECT_EQ(outcomes[0].sum, static_cast<std::int64_t>(kInts * (kInts + 1) / 2));
  EXPECT_EQ(outcomes[0].text, expected_concatenation());
  for (std::size_t i = 1; i < outcomes.size(); ++i) {
    EXPECT_EQ(outcomes[i].sum, outcomes[0].sum);
    EXPECT_EQ(outcomes[i].text, outcomes[0].text);
    EXPECT_EQ(outcomes[i].ranges, outcomes[0].ranges);
  }
}

TEST(OrchestratorInit, WorkersRunInitEvenIfTheCallerRanItBeforeThePoolExisted) {
  mpaio_test::Watchdog watchdog(60);
  auto ints = make_ints(100);
  {
    mpaio::InlineExecutor inline_executor;  // runs init() in this process first
    InitWorker<2> worker{DataIterator::partitions(ints.meta(), 2)};
    WorkerOrchestrator orchestrator{inline_executor, {&worker}};
    (void)orchestrator.run_blocking();
    ASSERT_EQ(worker.results.size(), 2U);
    EXPECT_EQ(worker.results[0].init_pid, ::getpid());
  }
  mpaio::ProcessPoolExecutor pool{{.workers = 2}};  // forked after: the workers inherit this process's memory
  InitWorker<2> worker{DataIterator::partitions(ints.meta(), 20)};
  WorkerOrchestrator orchestrator{pool, {&worker}};
  (void)orchestrator.run_blocking();
  ASSERT_EQ(worker.results.size(), 20U);
  for (const InitSeen& seen : worker.results) {
    EXPECT_NE(seen.pid, ::getpid());
    EXPECT_EQ(seen.init_pid, seen.pid) << "init() did not run in worker process " << seen.pid;
  }
}

}  // namespace
