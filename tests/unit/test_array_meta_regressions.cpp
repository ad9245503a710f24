// ArrayMeta: JSON documents that from_json accepted but that gave an unusable meta, kept as regressions
// (the invariants are those fuzz/fuzz_array_meta_json.cpp checks).
#include <gtest/gtest.h>

#include <string>

#include "mpaio/array_meta.hpp"
#include "mpaio/error.hpp"

namespace {

using mpaio::ArrayMeta;

// With a zero first extent the array is empty, so nbytes() did not overflow and from_json accepted the
// shape; row_size() (the product of the other extents) then threw InvalidArgument on first use. numpy
// rejects such shapes too ("array is too big").
TEST(ArrayMetaRegressions, ZeroRowsOfAnOverflowingRowSizeIsADecodeError) {
  const std::string json = R"({"shm_name":"x","typestr":"<i8","shape":[0,4294967296,4294967296]})";
  try {
    const ArrayMeta meta = ArrayMeta::from_json(json);
    ADD_FAILURE() << "decoded " << json << " as " << meta.to_json();
  } catch (const mpaio::DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find("overflows"), std::string::npos) << e.what();
  }
}

// Empty arrays whose sizes do fit still decode, and every size of theirs can be computed.
TEST(ArrayMetaRegressions, EmptyArraysWithRepresentableRowsStillDecode) {
  for (const char* json : {R"({"shm_name":"x","typestr":"<i8","shape":[0,4294967296]})",
                           R"({"shm_name":"x","typestr":"<i8","shape":[4294967296,0,4294967296]})",
                           R"({"shm_name":"x","typestr":"|S8","shape":[0]})"}) {
    const ArrayMeta meta = ArrayMeta::from_json(json);
    EXPECT_EQ(meta.size(), 0u) << json;
    EXPECT_EQ(meta.nbytes(), 0u) << json;
    EXPECT_NO_THROW((void)meta.row_size()) << json;
    EXPECT_EQ(ArrayMeta::from_json(meta.to_json()), meta) << json;
  }
}

}  // namespace
