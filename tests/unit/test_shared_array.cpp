// SharedArray<T> and ArrayView<T>: creation, N-d shapes, attaching from metadata, checks, views.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "mpaio/array_view.hpp"
#include "mpaio/error.hpp"
#include "mpaio/shared_array.hpp"

namespace {

using mpaio::Access;
using mpaio::ArrayMeta;
using mpaio::FixedUnicode;
using mpaio::Range;
using mpaio::SegmentKind;
using mpaio::SharedArray;
using mpaio::SharedMemory;

constexpr mpaio::SegmentOptions kNamed{.kind = SegmentKind::named};

/// The InvalidArgument message of `fn()`; fails the test if it does not throw one.
template <class Fn>
std::string invalid_argument(Fn&& fn) {
  try {
    fn();
    ADD_FAILURE() << "no InvalidArgument";
  } catch (const mpaio::InvalidArgument& e) {
    return e.what();
  }
  return {};
}

static_assert(!std::is_copy_constructible_v<SharedArray<int>>);
static_assert(std::is_nothrow_move_constructible_v<SharedArray<int>>);

TEST(SharedArray, CreateIsZeroFilledWithTheRequestedShape) {
  for (auto options : {mpaio::SegmentOptions{}, kNamed}) {
    auto a = SharedArray<std::int64_t>::create({1000}, options);
    EXPECT_EQ(a.size(), 1000u);
    ASSERT_EQ(a.shape().size(), 1u);
    EXPECT_EQ(a.shape()[0], 1000u);
    EXPECT_EQ(a.meta().dtype.typestr(), "<i8");
    EXPECT_EQ(a.meta().offset, 0u);
    EXPECT_EQ(a.meta().shm_name, a.segment().name());
    EXPECT_EQ(a.segment().kind(), options.kind);
    EXPECT_GE(a.segment().size(), 8000u);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.data()) % alignof(std::int64_t), 0u);
    for (std::int64_t v : a) ASSERT_EQ(v, 0);
    EXPECT_EQ(a.end() - a.begin(), 1000);
  }
}

TEST(SharedArray, CreateRejectsAnOverflowingShape) {
  EXPECT_THROW((void)SharedArray<std::int64_t>::create({std::size_t{1} << 62}), mpaio::InvalidArgument);
  EXPECT_THROW((void)SharedArray<std::int64_t>::create({std::size_t{1} << 40, std::size_t{1} << 40, 0}),
               mpaio::InvalidArgument);
}

TEST(SharedArray, AZeroExtentGivesAnEmptyArrayWithASegmentOfItsOwn) {
  using Shape = std::vector<std::size_t>;
  for (const auto& shape : {Shape{0}, Shape{0, 3}, Shape{3, 0, 2}}) {
    for (const mpaio::SegmentOptions options : {mpaio::SegmentOptions{}, kNamed}) {
      auto a = SharedArray<std::int64_t>::create(shape, options);
      EXPECT_EQ(a.size(), 0u);
      EXPECT_EQ(std::vector<std::size_t>(a.shape().begin(), a.shape().end()), shape);
      EXPECT_EQ(a.begin(), a.end());
      EXPECT_NE(a.data(), nullptr) << "an empty array still has a mapping";
      EXPECT_GE(a.segment().size(), sizeof(std::int64_t));
      EXPECT_TRUE(a.view().empty());
      EXPECT_TRUE(a.view().slice({0, 0}).empty());
      EXPECT_THROW((void)a.view().slice({0, 1}), mpaio::InvalidArgument);
      // Its metadata attaches like any other array's, here and (named) through JSON.
      auto again = SharedArray<std::int64_t>::attach(ArrayMeta::from_json(a.meta().to_json()));
      EXPECT_EQ(again.size(), 0u);
      EXPECT_EQ(again.meta(), a.meta());
    }
  }
  auto none = SharedArray<double>::from(std::vector<double>{});
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.shape()[0], 0u);
}

TEST(SharedArray, FromCopiesTheValues) {
  const std::vector<double> values = {1.5, -2.0, 3.25, 1e300};
  auto a = SharedArray<double>::from(values);
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(a.meta().dtype.typestr(), "<f8");
  EXPECT_EQ(std::vector<double>(a.begin(), a.end()), values);
  EXPECT_NE(static_cast<const void*>(a.data()), static_cast<const void*>(values.data())) << "a copy, in the segment";
}

TEST(SharedArray, FromWithAShape) {
  std::vector<std::int32_t> values(24);
  std::iota(values.begin(), values.end(), 0);
  auto a = SharedArray<std::int32_t>::from(values, {2, 3, 4}, kNamed);
  EXPECT_EQ(a.size(), 24u);
  EXPECT_EQ(a.meta().shape, (std::vector<std::size_t>{2, 3, 4}));
  EXPECT_EQ(a[23], 23);
  const std::string what = invalid_argument([&] { (void)SharedArray<std::int32_t>::from(values, {5, 5}); });
  EXPECT_NE(what.find("24 values"), std::string::npos) << what;
  EXPECT_NE(what.find("25 elements"), std::string::npos) << what;
}

TEST(SharedArray, FixedUnicodeElements) {
  std::vector<FixedUnicode<6>> names;
  for (int i = 0; i < 100; ++i) names.emplace_back("foo_" + std::to_string(i));
  auto a = SharedArray<FixedUnicode<6>>::from(names, kNamed);
  EXPECT_EQ(a.meta().dtype.typestr(), "<U6");
  EXPECT_EQ(a.meta().nbytes(), 2400u);
  EXPECT_EQ(a[99].str(), "foo_99");
  auto b = SharedArray<FixedUnicode<6>>::attach(a.meta());
  for (int i = 0; i < 100; ++i) ASSERT_EQ(b[static_cast<std::size_t>(i)].str(), "foo_" + std::to_string(i));
}

TEST(SharedArray, NdShapeViewsRows) {
  auto a = SharedArray<std::int64_t>::create({3, 4, 5});
  std::iota(a.begin(), a.end(), 0);
  const auto v = a.view();
  EXPECT_EQ(v.size(), 60u);
  EXPECT_EQ(v.ndim(), 3u);
  EXPECT_EQ(v.rows(), 3u);
  EXPECT_EQ(v.row_size(), 20u);
  EXPECT_EQ(v.shape()[2], 5u);
  EXPECT_FALSE(v.empty());
  const auto row = v.row(2);
  ASSERT_EQ(row.size(), 20u);
  EXPECT_EQ(row.front(), 40);
  EXPECT_EQ(row.back(), 59);
  EXPECT_EQ(v[59], 59);
  EXPECT_EQ(v.flat().size(), 60u);
  const std::string what = invalid_argument([&] { (void)v.row(3); });
  EXPECT_NE(what.find("row 3 of 3"), std::string::npos) << what;
}

TEST(SharedArray, MovedArrayKeepsItsDataAndShape) {
  auto a = SharedArray<std::int32_t>::create({2, 3}, kNamed);
  a[5] = 55;
  const auto* data = a.data();
  const std::string name = a.meta().shm_name;
  SharedArray<std::int32_t> b(std::move(a));
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(b[5], 55);
  EXPECT_EQ(b.view().row(1)[2], 55);
  EXPECT_EQ(b.meta().shm_name, name);
  EXPECT_EQ(b.shape().size(), 2u);
  EXPECT_EQ(b.segment().name(), name);
}

TEST(SharedArray, AttachFromMetaSharesTheData) {
  for (auto options : {mpaio::SegmentOptions{}, kNamed}) {
    auto owner = SharedArray<std::int64_t>::create({4, 25}, options);
    std::iota(owner.begin(), owner.end(), 1);
    auto reader = SharedArray<std::int64_t>::attach(owner.meta());
    EXPECT_EQ(reader.meta(), owner.meta());
    EXPECT_FALSE(reader.segment().writable());
    EXPECT_NE(reader.data(), owner.data()) << "its own mapping";
    EXPECT_EQ(reader.size(), 100u);
    EXPECT_EQ(reader.view().row(3)[24], 100);
    auto writer = SharedArray<std::int64_t>::attach(owner.meta(), Access::read_write);
    EXPECT_TRUE(writer.segment().writable());
    writer[0] = -1;
    EXPECT_EQ(owner[0], -1);
    EXPECT_EQ(reader[0], -1);
  }
}

TEST(SharedArray, AttachThroughJson) {
  auto owner = SharedArray<double>::create({8}, kNamed);
  owner[7] = 7.5;
  auto reader = SharedArray<double>::attach(ArrayMeta::from_json(owner.meta().to_json()));
  EXPECT_EQ(reader[7], 7.5);
}

TEST(SharedArray, AttachWithTheWrongElementTypeNamesBoth) {
  auto owner = SharedArray<std::int64_t>::create({10}, kNamed);
  std::string what = invalid_argument([&] { (void)SharedArray<double>::attach(owner.meta()); });
  EXPECT_NE(what.find("<i8"), std::string::npos) << what;
  EXPECT_NE(what.find("<f8"), std::string::npos) << what;
  EXPECT_NE(what.find(owner.meta().shm_name), std::string::npos) << what;
  EXPECT_THROW((void)SharedArray<std::uint64_t>::attach(owner.meta()), mpaio::InvalidArgument);
  EXPECT_THROW((void)SharedArray<std::int32_t>::attach(owner.meta()), mpaio::InvalidArgument);
}

TEST(SharedArray, AttachAnArraySmallerThanTheSegmentAtAnOffset) {
  // One segment, two arrays: 10 int64 at offset 0 and 6 int32 at offset 80.
  auto segment = SharedMemory::create(104, kNamed);
  auto* ints = reinterpret_cast<std::int64_t*>(segment.data());
  auto* small = reinterpret_cast<std::int32_t*>(segment.data() + 80);
  for (int i = 0; i < 10; ++i) ints[i] = i * 10;
  for (int i = 0; i < 6; ++i) small[i] = -i;
  auto a = SharedArray<std::int64_t>::attach({segment.name(), mpaio::dtype_of<std::int64_t>(), {10}, 0});
  auto b = SharedArray<std::int32_t>::attach({segment.name(), mpaio::dtype_of<std::int32_t>(), {2, 3}, 80});
  EXPECT_EQ(a[9], 90);
  EXPECT_EQ(b.size(), 6u);
  EXPECT_EQ(b.view().row(1)[2], -5);
}

TEST(SharedArray, AttachRejectsAMetaBiggerThanTheSegment) {
  auto owner = SharedArray<std::int64_t>::create({10}, kNamed);
  ArrayMeta bigger = owner.meta();
  bigger.shape = {11};
  std::string what = invalid_argument([&] { (void)SharedArray<std::int64_t>::attach(bigger); });
  EXPECT_NE(what.find("88 bytes"), std::string::npos) << what;
  EXPECT_NE(what.find(std::to_string(owner.segment().size()) + " bytes"), std::string::npos) << what;

  ArrayMeta shifted = owner.meta();
  shifted.offset = 8;  // 8 + 80 > 80
  what = invalid_argument([&] { (void)SharedArray<std::int64_t>::attach(shifted); });
  EXPECT_NE(what.find("offset 8"), std::string::npos) << what;

  ArrayMeta far = owner.meta();
  far.offset = std::size_t{1} << 40;
  EXPECT_THROW((void)SharedArray<std::int64_t>::attach(far), mpaio::InvalidArgument);

  ArrayMeta wide = owner.meta();
  wide.shape = {5, 3};
  EXPECT_THROW((void)SharedArray<std::int64_t>::attach(wide), mpaio::InvalidArgument);
}

TEST(SharedArray, AttachRejectsAMisalignedOffset) {
  auto segment = SharedMemory::create(4096, kNamed);
  const std::string what = invalid_argument(
      [&] { (void)SharedArray<std::int64_t>::attach({segment.name(), mpaio::dtype_of<std::int64_t>(), {4}, 4}); });
  EXPECT_NE(what.find("offset 4"), std::string::npos) << what;
  EXPECT_THROW((void)SharedArray<std::int32_t>::attach({segment.name(), mpaio::dtype_of<std::int32_t>(), {4}, 2}),
               mpaio::InvalidArgument);
  EXPECT_NO_THROW((void)SharedArray<std::int32_t>::attach({segment.name(), mpaio::dtype_of<std::int32_t>(), {4}, 4}));
}

TEST(SharedArray, AttachAMissingSegmentIsASystemError) {
  auto meta = SharedArray<std::int64_t>::create({4}, kNamed).meta();  // destroyed: the name is gone
  try {
    (void)SharedArray<std::int64_t>::attach(meta);
    FAIL();
  } catch (const mpaio::SystemError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find(meta.shm_name), std::string::npos) << e.what();
  }
}

TEST(ArrayView, SizeShapeIndexingAndSlices) {
  std::vector<std::int32_t> storage(12);
  std::iota(storage.begin(), storage.end(), 100);
  const std::vector<std::size_t> shape = {3, 4};
  const mpaio::ArrayView<std::int32_t> v(storage.data(), shape);
  EXPECT_EQ(v.size(), 12u);
  EXPECT_EQ(v.data(), storage.data());
  EXPECT_EQ(v.shape().size(), 2u);
  EXPECT_EQ(v[0], 100);
  EXPECT_EQ(v[11], 111);
  v[1] = 7;
  EXPECT_EQ(storage[1], 7);
  const auto s = v.slice({2, 5});
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], 102);
  EXPECT_EQ(s[2], 104);
  EXPECT_TRUE(v.slice({12, 12}).empty());
  EXPECT_EQ(v.slice({0, 12}).size(), 12u);
  EXPECT_EQ(v.row(1)[0], 104);

  std::string what = invalid_argument([&] { (void)v.slice({5, 13}); });
  EXPECT_NE(what.find("[5, 13)"), std::string::npos) << what;
  EXPECT_NE(what.find("12 elements"), std::string::npos) << what;
  what = invalid_argument([&] { (void)v.slice({6, 5}); });
  EXPECT_NE(what.find("[6, 5)"), std::string::npos) << what;
  EXPECT_THROW((void)v.slice({13, 13}), mpaio::InvalidArgument);
  EXPECT_THROW((void)v.row(3), mpaio::InvalidArgument);

  const mpaio::ArrayView<const std::int32_t> cv = v;  // a const view of a mutable one
  static_assert(std::is_same_v<decltype(cv[0]), const std::int32_t&>);
  EXPECT_EQ(cv.size(), 12u);
  EXPECT_EQ(cv[11], 111);
}

TEST(ArrayView, OneDimensionalAndEmptyViews) {
  std::vector<double> storage = {1, 2, 3};
  const std::vector<std::size_t> shape = {3};
  const mpaio::ArrayView<double> v(storage.data(), shape);
  EXPECT_EQ(v.rows(), 3u);
  EXPECT_EQ(v.row_size(), 1u);
  EXPECT_EQ(v.row(2)[0], 3.0);
  const mpaio::ArrayView<double> none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.begin(), none.end());
  const std::vector<std::size_t> zero = {0, 4};
  const mpaio::ArrayView<double> empty(storage.data(), zero);
  EXPECT_TRUE(empty.empty());
  EXPECT_THROW((void)empty.row(0), mpaio::InvalidArgument);
}

TEST(ArrayView, RowsOfARangeIsAViewOfThoseRows) {
  // Issue 11 (process layer): the ranges of DataIterator::rows are element ranges; rows_of turns one into
  // a view of its rows.
  std::vector<std::int32_t> storage(24);
  std::iota(storage.begin(), storage.end(), 0);
  const std::vector<std::size_t> shape = {4, 2, 3};
  const mpaio::ArrayView<std::int32_t> v(storage.data(), shape);
  const mpaio::ArrayView<std::int32_t> block = v.rows_of({6, 18});  // rows 1 and 2
  EXPECT_EQ(block.data(), storage.data() + 6);
  EXPECT_EQ(std::vector<std::size_t>(block.shape().begin(), block.shape().end()), (std::vector<std::size_t>{2, 2, 3}));
  EXPECT_EQ(block.size(), 12u);
  EXPECT_EQ(block.rows(), 2u);
  EXPECT_EQ(block.row_size(), 6u);
  EXPECT_EQ(block.row(1)[5], 17);
  block.row(0)[0] = -1;
  EXPECT_EQ(storage[6], -1);
  EXPECT_EQ(v.shape()[0], 4u) << "the original view keeps its shape";

  const std::vector<std::size_t> flat = {10};
  const mpaio::ArrayView<std::int32_t> line(storage.data(), flat);
  const auto part = line.rows_of({3, 7});
  EXPECT_EQ(part.data(), storage.data() + 3);
  EXPECT_EQ(std::vector<std::size_t>(part.shape().begin(), part.shape().end()), (std::vector<std::size_t>{4}));

  const auto none = v.rows_of({12, 12});
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(std::vector<std::size_t>(none.shape().begin(), none.shape().end()), (std::vector<std::size_t>{0, 2, 3}));
}

TEST(ArrayView, RowsOfOwnsItsShapeForItAndItsCopies) {
  std::vector<double> storage(12, 1.5);
  auto shape = std::make_unique<std::vector<std::size_t>>(std::vector<std::size_t>{6, 2});
  const mpaio::ArrayView<double> v(storage.data(), *shape);
  mpaio::ArrayView<const double> kept;
  {
    const mpaio::ArrayView<double> block = v.rows_of({4, 10});
    const mpaio::ArrayView<double> copy = block;
    kept = copy;  // a const view of a copy, outliving both
  }
  shape.reset();  // the parent's shape is gone; the rows' view has its own
  ASSERT_EQ(kept.ndim(), 2u);
  EXPECT_EQ(kept.shape()[0], 3u);
  EXPECT_EQ(kept.shape()[1], 2u);
  EXPECT_EQ(kept.size(), 6u);
  EXPECT_EQ(kept.row(2)[1], 1.5);
}

TEST(ArrayView, RowsOfARangeThatIsNotWholeRowsIsAnInvalidArgument) {
  std::vector<std::int32_t> storage(15);
  const std::vector<std::size_t> shape = {5, 3};
  const mpaio::ArrayView<std::int32_t> v(storage.data(), shape);
  EXPECT_EQ(invalid_argument([&] { (void)v.rows_of({2, 6}); }),
            "ArrayView::rows_of: range [2, 6) does not cover whole rows of 3 elements");
  EXPECT_EQ(invalid_argument([&] { (void)v.rows_of({3, 7}); }),
            "ArrayView::rows_of: range [3, 7) does not cover whole rows of 3 elements");
  EXPECT_EQ(invalid_argument([&] { (void)v.rows_of({12, 18}); }),
            "ArrayView::rows_of: range [12, 18) outside an array of 15 elements");
  EXPECT_EQ(invalid_argument([&] { (void)v.rows_of({6, 3}); }),
            "ArrayView::rows_of: range [6, 3) outside an array of 15 elements");
  const mpaio::ArrayView<std::int32_t> scalar(storage.data(), {});
  EXPECT_EQ(invalid_argument([&] { (void)scalar.rows_of({0, 1}); }), "ArrayView::rows_of: a 0-d array has no rows");
}

TEST(SharedArray, ConstViewOfAnArray) {
  auto a = SharedArray<std::int64_t>::from(std::vector<std::int64_t>{1, 2, 3, 4});
  const auto& ca = a;
  const auto v = ca.view();
  static_assert(std::is_same_v<decltype(v), const mpaio::ArrayView<const std::int64_t>>);
  std::int64_t sum = 0;
  for (std::int64_t x : v.slice({1, 4})) sum += x;
  EXPECT_EQ(sum, 9);
}

}  // namespace
