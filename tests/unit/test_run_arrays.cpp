// RunArrays, the resolution of a run's arrays that anything handing chunks to an executor uses: each distinct
// array once, checked, with a descriptor for the run, and a segment this process does not hold attached.
#include <fcntl.h>
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "mpaio/error.hpp"
#include "mpaio/shared_array.hpp"
#include "run_arrays.hpp"

namespace {

using mpaio::ArrayMeta;
using mpaio::InvalidArgument;
using mpaio::SharedArray;
using mpaio::detail::RunArrays;

/// The message of the InvalidArgument that `f` throws, or a failure.
template <class F>
std::string invalid_argument_of(F&& f) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InvalidArgument";
  return {};
}

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

TEST(RunArrays, EachDistinctArrayIsResolvedOnceWithItsDataAndADescriptorForTheRun) {
  auto ints = SharedArray<std::int64_t>::create({100});
  RunArrays arrays;
  const auto dtype = mpaio::dtype_of<std::int64_t>();
  EXPECT_EQ(arrays.add(ints.meta(), dtype, "Sum"), 0U);
  EXPECT_EQ(arrays.add(ints.meta(), dtype, "Other"), 0U);  // the same array: the same index
  ArrayMeta tail = ints.meta();
  tail.shape = {50};
  tail.offset = 50 * sizeof(std::int64_t);
  EXPECT_EQ(arrays.add(tail, dtype, "Sum"), 1U);  // another view of the segment: an array of its own
  ASSERT_EQ(arrays.arrays().size(), 2U);
  EXPECT_EQ(arrays.arrays()[0].data, reinterpret_cast<const std::byte*>(ints.data()));
  EXPECT_EQ(arrays.arrays()[1].data, reinterpret_cast<const std::byte*>(ints.data() + 50));
  for (const mpaio::RunArray& a : arrays.arrays()) {
    EXPECT_GE(::fcntl(a.segment_fd, F_GETFD), 0) << "the descriptor of " << a.meta.shm_name << " is not open";
    EXPECT_GE(a.segment_size, 100 * sizeof(std::int64_t));
  }
}

TEST(RunArrays, AnArrayOfAnotherElementTypeIsRejectedNamingTheUserAndTheArrayOnce) {
  auto doubles = SharedArray<double>::create({10});
  RunArrays arrays;
  const std::string message =
      invalid_argument_of([&] { arrays.add(doubles.meta(), mpaio::dtype_of<std::int64_t>(), "CountWorker"); });
  EXPECT_TRUE(message.starts_with("CountWorker: ")) << message;
  EXPECT_EQ(count_of(message, doubles.meta().shm_name), 1U) << message;
  EXPECT_NE(message.find("<f8"), std::string::npos) << message;
  EXPECT_TRUE(arrays.arrays().empty());
}

TEST(RunArrays, AnArrayWithMoreDimensionsThanAWorkerAcceptsIsRejected) {
  auto ints = SharedArray<std::int64_t>::create({1});
  ArrayMeta meta = ints.meta();
  meta.shape.assign(33, 1);
  RunArrays arrays;
  const std::string message = invalid_argument_of([&] { arrays.add(meta, mpaio::dtype_of<std::int64_t>(), "W"); });
  EXPECT_NE(message.find("33 dimensions, at most 32"), std::string::npos) << message;
}

TEST(RunArrays, AnArrayLargerThanItsSegmentIsRejected) {
  auto ints = SharedArray<std::int64_t>::create({10});
  ArrayMeta meta = ints.meta();
  meta.shape = {1'000'000};
  RunArrays arrays;
  const std::string message = invalid_argument_of([&] { arrays.add(meta, mpaio::dtype_of<std::int64_t>(), "W"); });
  EXPECT_TRUE(message.starts_with("W: ")) << message;
  EXPECT_TRUE(arrays.arrays().empty());
}

TEST(RunArrays, ASegmentThisProcessDoesNotHoldIsAttachedForTheRunAndAMissingOneIsNamed) {
  ArrayMeta meta;
  {
    auto kept = SharedArray<std::int64_t>::create({8}, {.kind = mpaio::SegmentKind::named, .keep = true});
    kept[3] = 42;
    meta = kept.meta();
  }  // unmapped and closed here; the name stays in /dev/shm
  struct Unlink {  // also when an assertion returns early
    std::string name;
    ~Unlink() { ::shm_unlink(name.c_str()); }
  } unlink{meta.shm_name.starts_with('/') ? meta.shm_name : "/" + meta.shm_name};
  {
    RunArrays arrays;
    ASSERT_EQ(arrays.add(meta, mpaio::dtype_of<std::int64_t>(), "W"), 0U);
    const auto* values = reinterpret_cast<const std::int64_t*>(arrays.arrays()[0].data);
    EXPECT_EQ(values[3], 42);
  }
  ASSERT_EQ(::shm_unlink(unlink.name.c_str()), 0);
  RunArrays arrays;
  const std::string message = invalid_argument_of([&] { arrays.add(meta, mpaio::dtype_of<std::int64_t>(), "W"); });
  EXPECT_TRUE(message.starts_with("W: cannot attach its array")) << message;
  EXPECT_NE(message.find(meta.shm_name), std::string::npos) << message;
}

}  // namespace
