#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <iterator>
#include <limits>
#include <ranges>
#include <string>
#include <vector>

#include "mpaio/data_iterator.hpp"

namespace {
mpaio::ArrayMeta meta_of(std::vector<std::size_t> shape) {
  return {"test", mpaio::dtype_of<std::int64_t>(), std::move(shape), 0};
}
std::vector<mpaio::Range> all(const mpaio::DataIterator& it) { return {it.begin(), it.end()}; }
using R = std::vector<mpaio::Range>;
}  // namespace

TEST(DataIterator, MpaioChunkTable) {
  EXPECT_EQ(all(mpaio::DataIterator::chunks(meta_of({10}), 3)), (R{{0, 3}, {3, 6}, {6, 9}, {9, 10}}));
  EXPECT_EQ(all(mpaio::DataIterator::chunks(meta_of({10}), 5)), (R{{0, 5}, {5, 10}}));
  EXPECT_EQ(all(mpaio::DataIterator::chunks(meta_of({10}), 7)), (R{{0, 7}, {7, 10}}));
  EXPECT_EQ(all(mpaio::DataIterator::chunks(meta_of({12}), 4, 2)), (R{{2, 6}, {6, 10}, {10, 12}}));
}

namespace {

/// Checks that `chunks` covers [start, end) in order with no gap and no overlap, none of them empty.
::testing::AssertionResult covers(const R& chunks, std::size_t start, std::size_t end) {
  std::size_t next = start;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const mpaio::Range& r = chunks[i];
    if (r.start != next) return ::testing::AssertionFailure() << "chunk " << i << " " << r << " should start at " << next;
    if (r.empty()) return ::testing::AssertionFailure() << "chunk " << i << " is empty";
    if (r.end < r.start) return ::testing::AssertionFailure() << "chunk " << i << " " << r << " is reversed";
    next = r.end;
  }
  if (next != end) return ::testing::AssertionFailure() << "chunks end at " << next << ", not " << end;
  return ::testing::AssertionSuccess();
}

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const mpaio::InvalidArgument& e) {
    return e.what();
  }
  return "<no InvalidArgument>";
}

}  // namespace

// The iterator is advertised as random access; standard algorithms must be able to use it as one.
static_assert(std::random_access_iterator<mpaio::DataIterator::iterator>);
static_assert(std::ranges::random_access_range<mpaio::DataIterator>);
static_assert(std::ranges::sized_range<mpaio::DataIterator>);

TEST(DataIterator, ChunksKeepTheMetaAndRandomAccess) {
  const auto it = mpaio::DataIterator::chunks(meta_of({10}), 3);
  EXPECT_EQ(it.meta(), meta_of({10}));
  EXPECT_EQ(it.size(), 4u);
  EXPECT_FALSE(it.empty());
  EXPECT_EQ(it[2], (mpaio::Range{6, 9}));
  EXPECT_EQ(it.end() - it.begin(), 4);
  EXPECT_EQ(*std::next(it.begin(), 3), (mpaio::Range{9, 10}));
  auto i = it.begin();
  i += 2;
  EXPECT_EQ(*i, (mpaio::Range{6, 9}));
  EXPECT_EQ(*(i - 1), (mpaio::Range{3, 6}));
  EXPECT_EQ(*--i, (mpaio::Range{3, 6}));
  EXPECT_EQ(it.begin()[3], (mpaio::Range{9, 10}));
  EXPECT_LT(it.begin(), it.end());
  EXPECT_EQ(*std::prev(it.end()), (mpaio::Range{9, 10}));
  // A binary search over the chunks: which chunk holds element 7?
  const auto found = std::ranges::partition_point(it, [](mpaio::Range r) { return r.end <= 7; });
  EXPECT_EQ(*found, (mpaio::Range{6, 9}));
}

TEST(DataIterator, ChunkSizeAtLeastTheArrayGivesOneChunk) {
  EXPECT_EQ(all(mpaio::DataIterator::chunks(meta_of({10}), 10)), (R{{0, 10}}));
  EXPECT_EQ(all(mpaio::DataIterator::chunks(meta_of({10}), 11)), (R{{0, 10}}));
  EXPECT_EQ(all(mpaio::DataIterator::chunks(meta_of({10}), 1000, 4)), (R{{4, 10}}));
  // A chunk size near SIZE_MAX must not wrap start + chunk_size around.
  const std::size_t huge = std::numeric_limits<std::size_t>::max();
  EXPECT_EQ(all(mpaio::DataIterator::chunks(meta_of({10}), huge)), (R{{0, 10}}));
  EXPECT_EQ(all(mpaio::DataIterator::chunks(meta_of({10}), huge, 2)), (R{{2, 10}}));
  EXPECT_EQ(all(mpaio::DataIterator::chunks(meta_of({10}), huge - 1, 5)), (R{{5, 10}}));
}

TEST(DataIterator, ChunksSweepCoversEverything) {
  for (std::size_t n = 0; n <= 40; ++n) {
    for (std::size_t chunk = 1; chunk <= 12; ++chunk) {
      for (std::size_t start = 0; start <= n; start += 3) {
        const R chunks = all(mpaio::DataIterator::chunks(meta_of({n}), chunk, start));
        ASSERT_TRUE(covers(chunks, start, n)) << "n=" << n << " chunk=" << chunk << " start=" << start;
        for (std::size_t i = 0; i + 1 < chunks.size(); ++i) ASSERT_EQ(chunks[i].size(), chunk);
        ASSERT_EQ(chunks.size(), (n - start + chunk - 1) / chunk);
      }
    }
  }
}

TEST(DataIterator, PartitionsAreBalanced) {
  EXPECT_EQ(all(mpaio::DataIterator::partitions(meta_of({10}), 3)), (R{{0, 4}, {4, 7}, {7, 10}}));
  EXPECT_EQ(all(mpaio::DataIterator::partitions(meta_of({12}), 4)), (R{{0, 3}, {3, 6}, {6, 9}, {9, 12}}));
  EXPECT_EQ(all(mpaio::DataIterator::partitions(meta_of({10}), 1)), (R{{0, 10}}));
  EXPECT_EQ(all(mpaio::DataIterator::partitions(meta_of({100'000'000}), 4)),
            (R{{0, 25'000'000}, {25'000'000, 50'000'000}, {50'000'000, 75'000'000}, {75'000'000, 100'000'000}}));
}

TEST(DataIterator, MorePartitionsThanElementsGivesOneElementEach) {
  EXPECT_EQ(all(mpaio::DataIterator::partitions(meta_of({3}), 8)), (R{{0, 1}, {1, 2}, {2, 3}}));
  EXPECT_EQ(mpaio::DataIterator::partitions(meta_of({5}), 1000).size(), 5u);
}

TEST(DataIterator, PartitionSweepHasNoGapsOrOverlaps) {
  for (std::size_t n = 0; n <= 50; ++n) {
    for (std::size_t p = 1; p <= 12; ++p) {
      const auto it = mpaio::DataIterator::partitions(meta_of({n}), p);
      const R parts = all(it);
      ASSERT_EQ(parts.size(), std::min(n, p)) << "n=" << n << " p=" << p;
      ASSERT_TRUE(covers(parts, 0, n)) << "n=" << n << " p=" << p;
      std::size_t smallest = n, largest = 0;
      for (const auto& r : parts) {
        smallest = std::min(smallest, r.size());
        largest = std::max(largest, r.size());
      }
      if (!parts.empty()) {
        ASSERT_LE(largest - smallest, 1u) << "n=" << n << " p=" << p;
      }
      for (std::size_t i = 0; i < parts.size(); ++i) ASSERT_EQ(it[i], parts[i]);
    }
  }
}

TEST(DataIterator, RowsOfA2dArray) {
  EXPECT_EQ(all(mpaio::DataIterator::rows(meta_of({5, 3}), 2)), (R{{0, 6}, {6, 12}, {12, 15}}));
  EXPECT_EQ(all(mpaio::DataIterator::rows(meta_of({5, 3}), 1)), (R{{0, 3}, {3, 6}, {6, 9}, {9, 12}, {12, 15}}));
  EXPECT_EQ(all(mpaio::DataIterator::rows(meta_of({5, 3}), 5)), (R{{0, 15}}));
  EXPECT_EQ(all(mpaio::DataIterator::rows(meta_of({5, 3}), 9)), (R{{0, 15}}));
}

TEST(DataIterator, RowsOfA3dArray) {
  // shape (4, 2, 3): a row is 6 elements.
  EXPECT_EQ(all(mpaio::DataIterator::rows(meta_of({4, 2, 3}), 3)), (R{{0, 18}, {18, 24}}));
  EXPECT_EQ(all(mpaio::DataIterator::rows(meta_of({4, 2, 3}), 2)), (R{{0, 12}, {12, 24}}));
  for (std::size_t rows = 1; rows <= 5; ++rows) {
    const R chunks = all(mpaio::DataIterator::rows(meta_of({7, 3, 5}), rows));
    ASSERT_TRUE(covers(chunks, 0, 105));
    for (const auto& r : chunks) ASSERT_EQ(r.start % 15, 0u) << "chunks start on row boundaries";
  }
}

TEST(DataIterator, RowsOfA1dArrayAreElements) {
  EXPECT_EQ(all(mpaio::DataIterator::rows(meta_of({5}), 2)), (R{{0, 2}, {2, 4}, {4, 5}}));
}

TEST(DataIterator, ZeroChunkSizeOrPartitionsOrRowsIsAnError) {
  EXPECT_NE(message_of([] { (void)mpaio::DataIterator::chunks(meta_of({10}), 0); }).find("chunk size 0"),
            std::string::npos);
  EXPECT_NE(message_of([] { (void)mpaio::DataIterator::partitions(meta_of({10}), 0); }).find("0 partitions"),
            std::string::npos);
  EXPECT_NE(message_of([] { (void)mpaio::DataIterator::rows(meta_of({10, 2}), 0); }).find("0 rows"),
            std::string::npos);
  EXPECT_THROW((void)mpaio::DataIterator::chunks(meta_of({0}), 0), mpaio::InvalidArgument);
  EXPECT_THROW((void)mpaio::DataIterator::partitions(meta_of({0}), 0), mpaio::InvalidArgument);
}

TEST(DataIterator, StartBeyondTheEndIsAnError) {
  const std::string what = message_of([] { (void)mpaio::DataIterator::chunks(meta_of({10}), 3, 11); });
  EXPECT_NE(what.find("start_idx 11"), std::string::npos) << what;
  EXPECT_NE(what.find("10 elements"), std::string::npos) << what;
  EXPECT_THROW((void)mpaio::DataIterator::chunks(meta_of({0}), 1, 1), mpaio::InvalidArgument);
  EXPECT_TRUE(mpaio::DataIterator::chunks(meta_of({10}), 3, 10).empty()) << "start at the end: nothing left";
}

TEST(DataIterator, EmptyArrayGivesZeroChunks) {
  for (const auto& shape : {std::vector<std::size_t>{0}, std::vector<std::size_t>{0, 5}, std::vector<std::size_t>{5, 0}}) {
    EXPECT_EQ(mpaio::DataIterator::chunks(meta_of(shape), 3).size(), 0u);
    EXPECT_EQ(mpaio::DataIterator::partitions(meta_of(shape), 4).size(), 0u);
    EXPECT_EQ(mpaio::DataIterator::rows(meta_of(shape), 2).size(), 0u);
    const auto it = mpaio::DataIterator::partitions(meta_of(shape), 4);
    EXPECT_TRUE(it.empty());
    EXPECT_EQ(it.begin(), it.end());
  }
}
