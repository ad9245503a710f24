// An exception type made transportable with register_exception<E>() comes back to the caller of run() as
// itself: ChunkError::original(), rethrow_original() and std::rethrow_if_nested() give the E that `process`
// threw, with its fields; an unregistered type stays a ChunkError with its type name and message. Issue 11
// item 19: before, the original type never came back, even on the thread executor. Every test runs under
// a Watchdog.
#include <gtest/gtest.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>

#include "mpaio/mpaio.hpp"
#include "support/engine.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::ArrayView;
using mpaio::ChunkError;
using mpaio::DataIterator;
using mpaio::Range;
using mpaio::SharedArray;
using mpaio::WorkerOrchestrator;
using mpaio_test::ExecutorKind;

constexpr std::size_t kSize = 1000;
constexpr std::size_t kBadElement = 500;

/// Trivially copyable, not derived from std::exception: travels through Codec as its bytes.
struct RowFault {
  std::uint64_t element;
  std::int32_t code;
};

/// Travels as its what() string.
class ParseFailure : public std::runtime_error {
 public:
  explicit ParseFailure(const std::string& what) : std::runtime_error(what) {}
};

class NotRegistered : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Registered before any pool is made, so that worker processes know the types too.
void register_test_exceptions() {
  mpaio::register_exception<RowFault>("mpaio_test.RowFault");
  mpaio::register_exception<ParseFailure>("mpaio_test.ParseFailure");
}

/// Throws E for the chunk that holds kBadElement; sums the others.
template <class E>
struct ThrowingWorker : mpaio::Worker<ThrowingWorker<E>, std::int64_t> {
  using mpaio::Worker<ThrowingWorker<E>, std::int64_t>::Worker;
  static std::int64_t process(ArrayView<const std::int64_t> data, Range chunk) {
    if (chunk.start <= kBadElement && kBadElement < chunk.end) {
      if constexpr (std::is_same_v<E, RowFault>) {
        throw RowFault{kBadElement, -7};
      } else {
        throw E("element " + std::to_string(kBadElement) + " is not a number");
      }
    }
    std::int64_t sum = 0;
    for (std::int64_t v : data.slice(chunk)) sum += v;
    return sum;
  }
  void process_callback(std::int64_t) {}
};

/// Runs a worker throwing E on `executor` and hands the ChunkError that run() threw to `check`.
template <class E, class Check>
void check_chunk_error(mpaio::Executor& executor, Check check) {
  auto ints = SharedArray<std::int64_t>::create({kSize});
  std::iota(ints.begin(), ints.end(), 1);
  ThrowingWorker<E> worker{DataIterator::partitions(ints.meta(), 8)};
  WorkerOrchestrator orchestrator{executor, {&worker}};
  try {
    (void)orchestrator.run_blocking();
    ADD_FAILURE() << "run() did not throw";
  } catch (const ChunkError& e) {
    check(e);
  }
}

/// The checks of all three kinds of exception on one executor.
void expect_originals_come_back(mpaio::Executor& executor) {
  {
    SCOPED_TRACE("RowFault, through Codec");
    check_chunk_error<RowFault>(executor, [](const ChunkError& e) {
      EXPECT_EQ(e.cause_type(), "(anonymous namespace)::RowFault") << "the text form stays as it was";
      ASSERT_TRUE(e.original()) << "no original exception: " << e.what();
      try {
        e.rethrow_original();
        ADD_FAILURE() << "rethrow_original() returned";
      } catch (const RowFault& fault) {
        EXPECT_EQ(fault.element, kBadElement);
        EXPECT_EQ(fault.code, -7);
      }
    });
  }
  {
    SCOPED_TRACE("ParseFailure, from its what() string, through std::rethrow_if_nested");
    check_chunk_error<ParseFailure>(executor, [](const ChunkError& e) {
      EXPECT_EQ(e.cause(), "element 500 is not a number");
      try {
        std::rethrow_if_nested(e);
        ADD_FAILURE() << "std::rethrow_if_nested found no nested exception: " << e.what();
      } catch (const ParseFailure& original) {
        EXPECT_STREQ(original.what(), "element 500 is not a number");
      }
    });
  }
  {
    SCOPED_TRACE("NotRegistered: a ChunkError as before");
    check_chunk_error<NotRegistered>(executor, [](const ChunkError& e) {
      EXPECT_EQ(e.original(), nullptr);
      EXPECT_NO_THROW(e.rethrow_original());
      EXPECT_NO_THROW(std::rethrow_if_nested(e));
      EXPECT_EQ(e.cause_type(), "(anonymous namespace)::NotRegistered");
      EXPECT_EQ(e.cause(), "element 500 is not a number");
    });
  }
}

class OriginalExceptions : public ::testing::TestWithParam<ExecutorKind> {
 protected:
  mpaio_test::Watchdog watchdog_{120};
};

TEST_P(OriginalExceptions, RegisteredTypesComeBackAsThemselves) {
  // Issue 11 item 19.
  register_test_exceptions();
  auto executor = mpaio_test::make_executor(GetParam(), 2);
  expect_originals_come_back(*executor);
}

INSTANTIATE_TEST_SUITE_P(Executors, OriginalExceptions, ::testing::Values(ExecutorKind::inline_, ExecutorKind::thread),
                         [](const ::testing::TestParamInfo<ExecutorKind>& info) {
                           return std::string(mpaio_test::kind_name(info.param));
                         });

TEST(ProcessPoolOriginalExceptions, RegisteredTypesComeBackAsThemselvesFromWorkerProcesses) {
  // Issue 11 item 19, on the process executor.
  mpaio_test::Watchdog watchdog(120);
  register_test_exceptions();  // before the pool: its workers are forked with the registrations
  mpaio::ProcessPoolExecutor pool{{.workers = 2}};
  expect_originals_come_back(pool);
}

}  // namespace
