// ArrayMeta: sizes, the JSON form and its decoding errors, check_fits / check_dtype.
#include <gtest/gtest.h>

#include <complex>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mpaio/array_meta.hpp"
#include "mpaio/error.hpp"

namespace {

using mpaio::ArrayMeta;
using mpaio::dtype_of;

ArrayMeta int64_meta(std::vector<std::size_t> shape, std::size_t offset = 0) {
  return {"/mpaio-1-00000000000000aa", dtype_of<std::int64_t>(), std::move(shape), offset};
}

/// The DecodeError message of from_json(json); fails the test if it does not throw one.
std::string decode_error(const std::string& json) {
  try {
    const ArrayMeta meta = ArrayMeta::from_json(json);
    ADD_FAILURE() << "decoded " << json << " as " << meta.to_json();
  } catch (const mpaio::DecodeError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type for " << json << ": " << e.what();
  }
  return {};
}

TEST(ArrayMeta, SizeNbytesRowSize) {
  const ArrayMeta a{"a", dtype_of<std::int32_t>(), {2, 3, 4}, 0};
  EXPECT_EQ(a.size(), 24u);
  EXPECT_EQ(a.nbytes(), 96u);
  EXPECT_EQ(a.row_size(), 12u);
  const ArrayMeta one_d = int64_meta({10});
  EXPECT_EQ(one_d.size(), 10u);
  EXPECT_EQ(one_d.nbytes(), 80u);
  EXPECT_EQ(one_d.row_size(), 1u);
  const ArrayMeta scalar = int64_meta({});
  EXPECT_EQ(scalar.size(), 1u) << "a 0-d array holds one element, as in numpy";
  EXPECT_EQ(scalar.nbytes(), 8u);
  const ArrayMeta empty = int64_meta({4, 0, 3});
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.nbytes(), 0u);
  EXPECT_EQ(empty.row_size(), 0u);
  const ArrayMeta strings{"s", dtype_of<mpaio::FixedUnicode<6>>(), {100}, 0};
  EXPECT_EQ(strings.nbytes(), 2400u);
}

TEST(ArrayMeta, SizeOverflowIsInvalidArgument) {
  const std::size_t big = std::size_t{1} << 33;
  EXPECT_THROW((void)int64_meta({big, big}).size(), mpaio::InvalidArgument);
  EXPECT_THROW((void)int64_meta({std::size_t{1} << 61}).nbytes(), mpaio::InvalidArgument) << "2^61 * 8 bytes";
  EXPECT_NO_THROW((void)int64_meta({std::size_t{1} << 60}).nbytes());
  EXPECT_THROW((void)int64_meta({1, big, big}).row_size(), mpaio::InvalidArgument);
}

TEST(ArrayMeta, JsonHasExactlyTheNumpyKeys) {
  const ArrayMeta meta{"/mpaio-7-0123456789abcdef", dtype_of<mpaio::FixedUnicode<6>>(), {2, 50}, 64};
  const auto j = nlohmann::json::parse(meta.to_json());
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.size(), 4u) << j.dump();
  EXPECT_EQ(j.at("shm_name"), "/mpaio-7-0123456789abcdef");
  EXPECT_EQ(j.at("typestr"), "<U6");
  EXPECT_EQ(j.at("shape"), nlohmann::json::array({2, 50}));
  EXPECT_EQ(j.at("offset"), 64);
}

TEST(ArrayMeta, JsonRoundTrip) {
  const std::vector<ArrayMeta> metas = {
      int64_meta({10}),
      int64_meta({}),
      int64_meta({0}),
      {"memfd:mpaio-1-00000000000000ff", dtype_of<double>(), {3, 4, 5}, 4096},
      {"/x", dtype_of<mpaio::FixedBytes<8>>(), {7}, 8},
      {"/y", dtype_of<bool>(), {std::size_t{1} << 40}, std::numeric_limits<std::size_t>::max()},
  };
  for (const ArrayMeta& meta : metas) {
    const std::string json = meta.to_json();
    EXPECT_EQ(ArrayMeta::from_json(json), meta) << json;
  }
}

TEST(ArrayMeta, FromJsonAcceptsKeysInAnyOrderAndWhitespace) {
  const auto meta = ArrayMeta::from_json(R"( { "offset": 16, "shape": [ 5 ], "typestr": "<f8", "shm_name": "/a" } )");
  EXPECT_EQ(meta, (ArrayMeta{"/a", dtype_of<double>(), {5}, 16}));
}

TEST(ArrayMeta, FromJsonRejectsInvalidJson) {
  for (const std::string json : {"", "{", "not json", R"({"shm_name": "/a",})", "{\"shm_name\": \"/a\"} trailing"}) {
    EXPECT_NE(decode_error(json).find("JSON"), std::string::npos) << json;
  }
  for (const std::string json : {"[1, 2]", "42", "\"string\"", "null"}) {
    EXPECT_NE(decode_error(json).find("object"), std::string::npos) << json;
  }
}

TEST(ArrayMeta, FromJsonNamesTheMissingKey) {
  EXPECT_NE(decode_error(R"({"typestr": "<i8", "shape": [1], "offset": 0})").find("\"shm_name\""), std::string::npos);
  EXPECT_NE(decode_error(R"({"shm_name": "/a", "shape": [1], "offset": 0})").find("\"typestr\""), std::string::npos);
  EXPECT_NE(decode_error(R"({"shm_name": "/a", "typestr": "<i8", "offset": 0})").find("\"shape\""), std::string::npos);
}

TEST(ArrayMeta, FromJsonRejectsWrongTypesNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"shm_name": 5, "typestr": "<i8", "shape": [1], "offset": 0})", "shm_name"},
      {R"({"shm_name": null, "typestr": "<i8", "shape": [1], "offset": 0})", "shm_name"},
      {R"({"shm_name": "/a", "typestr": 8, "shape": [1], "offset": 0})", "typestr"},
      {R"({"shm_name": "/a", "typestr": "<i8", "shape": 10, "offset": 0})", "shape"},
      {R"({"shm_name": "/a", "typestr": "<i8", "shape": "10", "offset": 0})", "shape"},
      {R"({"shm_name": "/a", "typestr": "<i8", "shape": [1.5], "offset": 0})", "shape"},
      {R"({"shm_name": "/a", "typestr": "<i8", "shape": ["1"], "offset": 0})", "shape"},
      {R"({"shm_name": "/a", "typestr": "<i8", "shape": [[1]], "offset": 0})", "shape"},
      {R"({"shm_name": "/a", "typestr": "<i8", "shape": [1], "offset": "0"})", "offset"},
      {R"({"shm_name": "/a", "typestr": "<i8", "shape": [1], "offset": 8.0})", "offset"},
      {R"({"shm_name": "/a", "typestr": "<i8", "shape": [1], "offset": null})", "offset"},
  };
  for (const auto& [json, key] : cases) {
    EXPECT_NE(decode_error(json).find("\"" + key + "\""), std::string::npos) << json;
  }
}

TEST(ArrayMeta, FromJsonRejectsNegativeNumbers) {
  EXPECT_NE(decode_error(R"({"shm_name": "/a", "typestr": "<i8", "shape": [-1], "offset": 0})").find("\"shape\""),
            std::string::npos);
  EXPECT_NE(decode_error(R"({"shm_name": "/a", "typestr": "<i8", "shape": [2, -3], "offset": 0})").find("\"shape\""),
            std::string::npos);
  EXPECT_NE(decode_error(R"({"shm_name": "/a", "typestr": "<i8", "shape": [1], "offset": -8})").find("\"offset\""),
            std::string::npos);
}

TEST(ArrayMeta, FromJsonRejectsNumbersBeyond64Bits) {
  EXPECT_FALSE(decode_error(R"({"shm_name": "/a", "typestr": "<i8", "shape": [18446744073709551616], "offset": 0})")
                   .empty());
  EXPECT_FALSE(decode_error(R"({"shm_name": "/a", "typestr": "<i8", "shape": [1], "offset": 18446744073709551616})")
                   .empty());
}

TEST(ArrayMeta, FromJsonRejectsABadTypestrNamingIt) {
  for (const std::string typestr : {">i4", "<q8", "<U0", "x"}) {
    const std::string what =
        decode_error(R"({"shm_name": "/a", "typestr": ")" + typestr + R"(", "shape": [1], "offset": 0})");
    EXPECT_NE(what.find(typestr), std::string::npos) << what;
  }
}

TEST(ArrayMeta, FromJsonRejectsAShapeWhoseSizeOverflows) {
  // The product of the extents overflows 64 bits...
  EXPECT_NE(decode_error(R"({"shm_name": "/a", "typestr": "<i8", "shape": [4294967296, 4294967296], "offset": 0})")
                .find("overflow"),
            std::string::npos);
  // ... or the element count fits but the byte count does not.
  EXPECT_NE(decode_error(R"({"shm_name": "/a", "typestr": "<i8", "shape": [2305843009213693952], "offset": 0})")
                .find("overflow"),
            std::string::npos);
}

TEST(ArrayMeta, CheckFitsAcceptsArraysInsideTheSegment) {
  EXPECT_NO_THROW(int64_meta({10}).check_fits(80));
  EXPECT_NO_THROW(int64_meta({10}, 8).check_fits(88));
  EXPECT_NO_THROW(int64_meta({0}, 80).check_fits(80));
  EXPECT_NO_THROW(int64_meta({2, 5}, 4096).check_fits(8192));
}

TEST(ArrayMeta, CheckFitsNamesTheNumbers) {
  try {
    int64_meta({10}, 16).check_fits(90);  // needs 16 + 80 = 96 bytes
    FAIL();
  } catch (const mpaio::InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("offset 16"), std::string::npos) << what;
    EXPECT_NE(what.find("80 bytes"), std::string::npos) << what;
    EXPECT_NE(what.find("90 bytes"), std::string::npos) << what;
    EXPECT_NE(what.find("/mpaio-1-00000000000000aa"), std::string::npos) << what;
  }
  EXPECT_THROW(int64_meta({10}).check_fits(79), mpaio::InvalidArgument);
  EXPECT_THROW(int64_meta({10}, 1).check_fits(80), mpaio::InvalidArgument);
  EXPECT_THROW(int64_meta({1}, std::numeric_limits<std::size_t>::max() - 3).check_fits(1 << 20),
               mpaio::InvalidArgument)
      << "offset + nbytes overflowing must not wrap around into 'fits'";
}

TEST(ArrayMeta, CheckFitsRejectsAMisalignedOffset) {
  // Documented: check_fits also checks that the offset is aligned for the element type.
  try {
    int64_meta({4}, 4).check_fits(1024);
    FAIL() << "offset 4 accepted for 8-byte elements";
  } catch (const mpaio::InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("offset 4"), std::string::npos) << what;
    EXPECT_NE(what.find("<i8"), std::string::npos) << what;
  }
  EXPECT_THROW((ArrayMeta{"a", dtype_of<mpaio::FixedUnicode<6>>(), {2}, 2}).check_fits(1024), mpaio::InvalidArgument);
  EXPECT_THROW((ArrayMeta{"a", dtype_of<std::complex<double>>(), {2}, 4}).check_fits(1024), mpaio::InvalidArgument);
  // Alignment is that of the C++ element type, not the item size.
  EXPECT_NO_THROW((ArrayMeta{"a", dtype_of<mpaio::FixedUnicode<6>>(), {2}, 4}).check_fits(1024));
  EXPECT_NO_THROW((ArrayMeta{"a", dtype_of<std::complex<double>>(), {2}, 8}).check_fits(1024));
  EXPECT_NO_THROW((ArrayMeta{"a", dtype_of<mpaio::FixedBytes<8>>(), {2}, 3}).check_fits(1024));
  EXPECT_NO_THROW((ArrayMeta{"a", dtype_of<std::int16_t>(), {2}, 6}).check_fits(1024));
}

TEST(ArrayMeta, CheckDtypeNamesBothTypes) {
  EXPECT_NO_THROW(int64_meta({1}).check_dtype(dtype_of<std::int64_t>()));
  try {
    int64_meta({1}).check_dtype(dtype_of<double>());
    FAIL();
  } catch (const mpaio::InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("<i8"), std::string::npos) << what;
    EXPECT_NE(what.find("<f8"), std::string::npos) << what;
  }
  EXPECT_THROW(int64_meta({1}).check_dtype(dtype_of<std::uint64_t>()), mpaio::InvalidArgument);
  EXPECT_THROW((ArrayMeta{"a", dtype_of<mpaio::FixedUnicode<6>>(), {1}, 0}).check_dtype(dtype_of<mpaio::FixedUnicode<5>>()),
               mpaio::InvalidArgument);
}

}  // namespace
