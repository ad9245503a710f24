// Reliability: bad input is refused before anything is dispatched (no chunk starts, no worker changes):
// pools of 0 workers, chunk size 0, an unknown segment name, an element type or shape that does not match
// the segment. An oversize result fails only its own chunk, with its size in the message. An empty array,
// made the usual way (SharedArray::create with a zero extent), completes at once with zero chunks, on every
// executor, also beside an array that has chunks.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "support/engine.hpp"
#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using namespace mpaio_test::rel;
using namespace std::chrono_literals;
using mpaio::ArrayMeta;
using mpaio::DataIterator;
using mpaio::ErrorPolicy;
using mpaio::InvalidArgument;
using mpaio::ProcessPoolExecutor;
using mpaio::WorkerOrchestrator;

/// Expects `f` to throw InvalidArgument whose message holds every one of `parts`.
template <class F>
void expect_invalid(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no InvalidArgument";
  } catch (const InvalidArgument& e) {
    const std::string what = e.what();
    for (const auto& p : parts) EXPECT_NE(what.find(p), std::string::npos) << "'" << p << "' not in: " << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected InvalidArgument, got " << typeid(e).name() << ": " << e.what();
  }
}

class reliability_BadInput : public ReliabilityTest {};

TEST_F(reliability_BadInput, PoolsOfZeroWorkersAreInvalidArguments) {
  expect_invalid([] { ProcessPoolExecutor pool{{.workers = 0}}; }, {"workers", "0"});
  expect_invalid([] { mpaio::ThreadPoolExecutor pool{{.workers = 0}}; }, {"workers", "0"});
  EXPECT_TRUE(mpaio_test::children_of(::getpid()).empty()) << "a refused pool left a process";
}

TEST_F(reliability_BadInput, ChunkSizeZeroIsAnInvalidArgument) {
  auto ints = iota_array(100);
  expect_invalid([&] { (void)DataIterator::chunks(ints.meta(), 0); }, {"chunk size 0", ints.meta().shm_name});
  expect_invalid([&] { (void)DataIterator::partitions(ints.meta(), 0); }, {"0 partitions"});
  expect_invalid([&] { (void)DataIterator::rows(ints.meta(), 0); }, {"0 rows"});
}

/// A pool, a board and a good worker; `bad` is added after it, so that refusing the run proves nothing ran.
class reliability_RefusedRun : public ReliabilityTest {
 protected:
  void expect_refused(const ArrayMeta& bad_meta, const std::vector<std::string>& parts) {
    Board board(100);
    ProcessPoolExecutor pool{{.workers = 2}};
    auto ints = iota_array(1000);
    const std::vector<pid_t> before = worker_pids(pool);
    SumWorker good{DataIterator::chunks(ints.meta(), 100)};
    SumWorker bad{DataIterator::chunks(bad_meta, 100)};
    WorkerOrchestrator orchestrator{pool, {&good, &bad}};
    std::vector<std::string> with_type = parts;
    with_type.push_back(bad.type_name());
    const std::int64_t start = now_ns();
    expect_invalid([&] { (void)orchestrator.run_blocking(); }, with_type);
    record_timing("bad input refused", ms_between(start, now_ns()));
    EXPECT_EQ(board.get(Cell::started), 0) << "a chunk ran although the run was refused";
    EXPECT_EQ(good.deliveries, 0U);
    EXPECT_EQ(worker_pids(pool), before);
    // The refusal left the pool as it was.
    expect_healthy_run(pool, ints, 100);
  }
};

TEST_F(reliability_RefusedRun, UnknownSegmentNameNamesTheWorkerTypeAndTheName) {
  const ArrayMeta meta{"/mpaio-no-such-segment-4242", mpaio::dtype_of<std::int64_t>(), {1000}, 0};
  expect_refused(meta, {"/mpaio-no-such-segment-4242"});
}

TEST_F(reliability_RefusedRun, ElementTypeThatDoesNotMatchTheWorker) {
  auto doubles = mpaio::SharedArray<double>::create({1000}, {.kind = mpaio::SegmentKind::named});
  expect_refused(doubles.meta(), {doubles.meta().shm_name, "<f8", "<i8"});
}

TEST_F(reliability_RefusedRun, ShapeLargerThanTheSegment) {
  auto small = iota_array(1000, {.kind = mpaio::SegmentKind::named});
  ArrayMeta meta = small.meta();
  meta.shape = {1'000'000};
  expect_refused(meta, {small.meta().shm_name, "8000000"});
}

TEST_F(reliability_RefusedRun, OffsetPastTheEndOfTheSegment) {
  auto small = iota_array(1000, {.kind = mpaio::SegmentKind::named});
  ArrayMeta meta = small.meta();
  meta.offset = 7992;  // one element fits, 1000 do not
  expect_refused(meta, {small.meta().shm_name});
}

/// The message of the InvalidArgument that refusing a run of `worker` throws (on the inline executor: the
/// checks come before any executor is involved).
std::string refusal(SumWorker& worker) {
  mpaio::InlineExecutor executor;
  WorkerOrchestrator orchestrator{executor, {&worker}};
  try {
    (void)orchestrator.run_blocking();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  ADD_FAILURE() << "the run was not refused";
  return {};
}

TEST_F(reliability_BadInput, EachRefusalMessageNamesItsWorkerTypeAndItsArrayOnce) {
  // Issue 11 (process layer), the wrong-dtype message: each message says its subject once.
  auto doubles = mpaio::SharedArray<double>::create({1000});
  auto ints = iota_array(1000, {.kind = mpaio::SegmentKind::named});
  const std::string ints_name = ints.meta().shm_name;
  SumWorker wrong_type{DataIterator::chunks(doubles.meta(), 100)};
  const std::string type = wrong_type.type_name();
  EXPECT_EQ(refusal(wrong_type),
            type + ": array " + doubles.meta().shm_name + " holds <f8 elements, but <i8 was expected");

  ArrayMeta too_long = ints.meta();
  too_long.shape = {1'000'000};
  SumWorker beyond{DataIterator::chunks(too_long, 100'000)};
  EXPECT_EQ(refusal(beyond), type + ": array " + ints_name +
                                 " <i8 shape [1000000] at offset 0 needs 8000000 bytes, beyond the segment's 8000 bytes");

  ArrayMeta misaligned = ints.meta();
  misaligned.shape = {10};
  misaligned.offset = 4;
  SumWorker unaligned{DataIterator::chunks(misaligned, 5)};
  EXPECT_EQ(refusal(unaligned),
            type + ": array " + ints_name + " <i8: offset 4 is not a multiple of the element alignment 8");

  ArrayMeta deep = ints.meta();
  deep.shape = std::vector<std::size_t>(33, 1);
  SumWorker too_deep{DataIterator::chunks(deep, 1)};
  EXPECT_EQ(refusal(too_deep), type + ": array " + ints_name + ": 33 dimensions, at most 32");

  const ArrayMeta unknown{"/mpaio-no-such-segment-4242", mpaio::dtype_of<std::int64_t>(), {1000}, 0};
  SumWorker missing{DataIterator::chunks(unknown, 100)};
  EXPECT_EQ(refusal(missing), type + ": cannot attach its array: shm_open(name=/mpaio-no-such-segment-4242, "
                                     "access=read_only) failed: No such file or directory");
}

/// Returns a string of `n` bytes for chunk starts in the board's "big" cell, small ones otherwise.
struct TextWorker : mpaio::Worker<TextWorker, std::string> {
  using Worker::Worker;
  static std::string process(mpaio::ArrayView<const std::int64_t> data, mpaio::Range chunk) {
    std::int64_t sum = 0;
    for (std::int64_t v : data.slice(chunk)) sum += v;
    if (chunk.start == 300) return std::string(100'000, 'x');  // over the pool's 64 KiB limit
    return std::to_string(sum);
  }
  void process_callback(std::string text, mpaio::Range chunk) { texts[chunk.start] = std::move(text); }
  std::map<std::size_t, std::string> texts;
};

TEST_F(reliability_BadInput, OversizeResultFailsOnlyItsChunkWithTheSizeInTheMessage) {
  constexpr std::size_t kLimit = 64 * 1024;
  ProcessPoolExecutor pool{{.workers = 2, .max_result_bytes = kLimit}};
  auto ints = iota_array(1000);
  TextWorker texts{DataIterator::chunks(ints.meta(), 100)};
  WorkerOrchestrator orchestrator{pool, {&texts}, {.on_error = ErrorPolicy::collect}};
  const RunOutcome out = run_outcome(orchestrator);
  ASSERT_FALSE(out.error) << out.what();
  ASSERT_EQ(out.report->failures.size(), 1U);
  const auto& f = out.report->failures[0];
  EXPECT_EQ(f.range, (mpaio::Range{300, 400}));
  std::vector<std::byte> encoded;
  mpaio::Codec<std::string>::encode(std::string(100'000, 'x'), encoded);
  EXPECT_NE(f.message.find(std::to_string(encoded.size())), std::string::npos) << f.message;
  EXPECT_NE(f.message.find(std::to_string(kLimit)), std::string::npos) << f.message;
  EXPECT_NE(f.message.find("max_result_bytes"), std::string::npos) << f.message;
  EXPECT_EQ(texts.texts.size(), 9U);
  for (const auto& [start, text] : texts.texts) {
    EXPECT_EQ(text, std::to_string(expected_sum({start, start + 100}))) << "chunk at " << start;
  }
  // fail-fast: the same chunk fails the run with a ChunkError (not a crash) and the pool stays healthy.
  TextWorker again{DataIterator::chunks(ints.meta(), 100)};
  WorkerOrchestrator strict{pool, {&again}};
  const RunOutcome failed = run_outcome(strict);
  const auto* error = failed.error_as<mpaio::ChunkError>();
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(dynamic_cast<const mpaio::WorkerCrashed*>(error), nullptr);
  EXPECT_EQ(error->range(), (mpaio::Range{300, 400}));
  expect_healthy_run(pool, ints, 100);
}

/// The empty-array runs, on each executor.
class reliability_EmptyArray : public ReliabilityTest, public ::testing::WithParamInterface<ExecutorKind> {};

TEST_P(reliability_EmptyArray, MadeBySharedArrayCreateCompletesAtOnceWithZeroChunks) {
  Board board(100);  // before any SumWorker: it passes the board to its workers as its parameters
  const auto executor = make_executor(GetParam(), 2);
  const auto* pool = dynamic_cast<const ProcessPoolExecutor*>(executor.get());
  const std::vector<pid_t> before = pool != nullptr ? worker_pids(*pool) : std::vector<pid_t>{};
  double slowest = 0;
  for (const auto& shape : {std::vector<std::size_t>{0}, std::vector<std::size_t>{0, 3}}) {
    for (const auto kind : {mpaio::SegmentKind::anonymous, mpaio::SegmentKind::named}) {
      auto empty = mpaio::SharedArray<std::int64_t>::create(shape, {.kind = kind});
      ASSERT_EQ(empty.size(), 0U);
      const DataIterator splits[] = {DataIterator::chunks(empty.meta(), 100), DataIterator::partitions(empty.meta(), 4),
                                     DataIterator::rows(empty.meta(), 2)};
      for (const DataIterator& split : splits) {
        SumWorker sums{split};
        EXPECT_EQ(sums.chunks().size(), 0U);
        WorkerOrchestrator orchestrator{*executor, {&sums}};
        const std::int64_t start = now_ns();
        const RunOutcome out = run_outcome(orchestrator);
        const double ms = ms_between(start, out.end_ns);
        slowest = std::max(slowest, ms);
        ASSERT_FALSE(out.error) << out.what();
        EXPECT_TRUE(out.report->chunks.empty());
        EXPECT_TRUE(out.report->failures.empty());
        EXPECT_EQ(out.report->unfinished, 0U);
        EXPECT_EQ(sums.deliveries, 0U);
        EXPECT_LT(ms, 1000.0) << "an empty run should complete at once";
      }
    }
  }
  record_timing(std::string("slowest empty array run (") + kind_name(GetParam()) + ")", slowest);
  EXPECT_EQ(board.get(Cell::started), 0);

  // Beside an array that has chunks, in one run: the empty array is bound to the workers like any other,
  // and gets no chunk.
  auto ints = iota_array(1000);
  auto empty = mpaio::SharedArray<std::int64_t>::create({0, 3});
  SumWorker none{DataIterator::rows(empty.meta(), 1)};
  SumWorker some{DataIterator::chunks(ints.meta(), 100)};
  WorkerOrchestrator orchestrator{*executor, {&none, &some}};
  const RunOutcome out = run_outcome(orchestrator);
  ASSERT_FALSE(out.error) << out.what();
  expect_sums(some);
  EXPECT_EQ(none.deliveries, 0U);
  EXPECT_EQ(out.report->chunks.size(), some.chunks().size());
  for (const auto& c : out.report->chunks) EXPECT_EQ(c.worker, 1U) << "a chunk of the empty array ran";
  EXPECT_EQ(board.get(Cell::started), static_cast<std::int64_t>(some.chunks().size()));
  if (pool != nullptr) {
    EXPECT_EQ(worker_pids(*pool), before) << "a worker was replaced";
  }
}

INSTANTIATE_TEST_SUITE_P(Executors, reliability_EmptyArray,
                         ::testing::Values(ExecutorKind::inline_, ExecutorKind::thread, ExecutorKind::process),
                         [](const auto& info) { return std::string(kind_name(info.param)); });

}  // namespace
