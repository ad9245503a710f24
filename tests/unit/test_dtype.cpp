// DType: typestr of every built-in element type, parsing, round trips and rejected typestrs.
#include <gtest/gtest.h>

#include <complex>
#include <cstdint>
#include <string>
#include <vector>

#include "mpaio/dtype.hpp"
#include "mpaio/error.hpp"

namespace {

using mpaio::DType;
using mpaio::DTypeKind;
using mpaio::dtype_of;
using mpaio::FixedBytes;
using mpaio::FixedUnicode;

// Which types are elements is decided at compile time.
static_assert(mpaio::Element<std::int64_t>);
static_assert(mpaio::Element<const double>);
static_assert(mpaio::Element<FixedUnicode<6>>);
static_assert(!mpaio::Element<std::string>);
static_assert(!mpaio::Element<long double>);
static_assert(!mpaio::Element<char>);
static_assert(!mpaio::Element<int*>);
static_assert(dtype_of<const std::int32_t>() == dtype_of<std::int32_t>());

TEST(DType, TypestrOfEveryElementType) {
  EXPECT_EQ(dtype_of<bool>().typestr(), "|b1");
  EXPECT_EQ(dtype_of<std::int8_t>().typestr(), "|i1");
  EXPECT_EQ(dtype_of<std::int16_t>().typestr(), "<i2");
  EXPECT_EQ(dtype_of<std::int32_t>().typestr(), "<i4");
  EXPECT_EQ(dtype_of<std::int64_t>().typestr(), "<i8");
  EXPECT_EQ(dtype_of<std::uint8_t>().typestr(), "|u1");
  EXPECT_EQ(dtype_of<std::uint16_t>().typestr(), "<u2");
  EXPECT_EQ(dtype_of<std::uint32_t>().typestr(), "<u4");
  EXPECT_EQ(dtype_of<std::uint64_t>().typestr(), "<u8");
  EXPECT_EQ(dtype_of<float>().typestr(), "<f4");
  EXPECT_EQ(dtype_of<double>().typestr(), "<f8");
  EXPECT_EQ(dtype_of<std::complex<float>>().typestr(), "<c8");
  EXPECT_EQ(dtype_of<std::complex<double>>().typestr(), "<c16");
  EXPECT_EQ(dtype_of<FixedBytes<8>>().typestr(), "|S8");
  EXPECT_EQ(dtype_of<FixedBytes<1>>().typestr(), "|S1");
  EXPECT_EQ(dtype_of<FixedUnicode<6>>().typestr(), "<U6");
  EXPECT_EQ(dtype_of<FixedUnicode<1>>().typestr(), "<U1");
}

TEST(DType, ItemsizeMatchesTheCppType) {
  EXPECT_EQ(dtype_of<bool>().itemsize, sizeof(bool));
  EXPECT_EQ(dtype_of<std::int16_t>().itemsize, sizeof(std::int16_t));
  EXPECT_EQ(dtype_of<std::uint64_t>().itemsize, sizeof(std::uint64_t));
  EXPECT_EQ(dtype_of<std::complex<double>>().itemsize, sizeof(std::complex<double>));
  EXPECT_EQ(dtype_of<FixedBytes<8>>().itemsize, 8u);
  EXPECT_EQ(dtype_of<FixedUnicode<6>>().itemsize, 24u);
  EXPECT_EQ(dtype_of<FixedUnicode<6>>().itemsize, sizeof(FixedUnicode<6>));
  EXPECT_EQ(dtype_of<FixedUnicode<6>>().kind, DTypeKind::unicode);
  EXPECT_EQ(dtype_of<std::complex<float>>().kind, DTypeKind::complex);
}

TEST(DType, ParseRoundTripsEveryElementType) {
  const std::vector<DType> all = {
      dtype_of<bool>(),           dtype_of<std::int8_t>(),   dtype_of<std::int16_t>(),
      dtype_of<std::int32_t>(),   dtype_of<std::int64_t>(),  dtype_of<std::uint8_t>(),
      dtype_of<std::uint16_t>(),  dtype_of<std::uint32_t>(), dtype_of<std::uint64_t>(),
      dtype_of<float>(),          dtype_of<double>(),        dtype_of<std::complex<float>>(),
      dtype_of<std::complex<double>>(), dtype_of<FixedBytes<8>>(), dtype_of<FixedUnicode<6>>(),
      dtype_of<FixedBytes<300>>(), dtype_of<FixedUnicode<1000>>()};
  for (const DType& d : all) {
    const std::string s = d.typestr();
    EXPECT_EQ(DType::parse(s), d) << s;
    EXPECT_EQ(DType::parse(s).typestr(), s);
  }
}

TEST(DType, ParseAcceptsNumpySpellings) {
  EXPECT_EQ(DType::parse("<i8"), dtype_of<std::int64_t>());
  EXPECT_EQ(DType::parse("=i8"), dtype_of<std::int64_t>());  // native order on a little-endian machine
  EXPECT_EQ(DType::parse("|i1"), dtype_of<std::int8_t>());
  EXPECT_EQ(DType::parse("<i1"), dtype_of<std::int8_t>());
  EXPECT_EQ(DType::parse("|b1"), dtype_of<bool>());
  EXPECT_EQ(DType::parse("|S8"), dtype_of<FixedBytes<8>>());
  EXPECT_EQ(DType::parse("<U6"), dtype_of<FixedUnicode<6>>());
  EXPECT_EQ(DType::parse("<U6").itemsize, 24u);
  EXPECT_EQ(DType::parse("<c16"), dtype_of<std::complex<double>>());
  EXPECT_EQ(DType::parse("<u2"), dtype_of<std::uint16_t>());
  EXPECT_NE(DType::parse("<u2"), DType::parse("<i2"));
  EXPECT_NE(DType::parse("<f8"), DType::parse("<i8"));
}

TEST(DType, ParseRejectsBadTypestrsNamingThem) {
  const std::vector<std::string> bad = {">i4", "x",   "<i3", "<q8",  "<U0", "",     "<i",   "i8",  "<i8x", "<i-8",
                                        "<i+8", "<f2", "|b2", "<c4", "|S0", "<i 8", "<i08x", "<f16", ">U6", "!i4",
                                        "<U99999999999999999999999"};
  for (const std::string& s : bad) {
    try {
      const DType d = DType::parse(s);
      ADD_FAILURE() << "parsed \"" << s << "\" as " << d.typestr();
    } catch (const mpaio::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("\"" + s + "\""), std::string::npos) << e.what();
    }
  }
}

TEST(DType, BigEndianIsNamedAsTheReason) {
  try {
    (void)DType::parse(">i4");
    FAIL();
  } catch (const mpaio::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("big-endian"), std::string::npos) << e.what();
  }
}

}  // namespace
