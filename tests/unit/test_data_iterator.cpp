#include <gtest/gtest.h>

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
