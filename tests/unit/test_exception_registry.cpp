// register_exception<E>(): a registered exception type is encoded with its stable name where it is caught
// and rebuilt as itself where it is decoded (through Codec<E>, or from its what() string); unregistered types
// give no payload; malformed payloads are DecodeErrors; a name names one type. Issue 11 item 19.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpaio/error.hpp"
#include "mpaio/exception_registry.hpp"

namespace {

/// Trivially copyable: travels through Codec as its bytes.
struct RowFault {
  std::uint32_t row;
  std::int32_t code;
};

/// Travels as its what() string.
class ParseFailure : public std::runtime_error {
 public:
  explicit ParseFailure(const std::string& what) : std::runtime_error(what) {}
};

/// Has a cereal serialize function, so travels through Codec with its fields.
struct BadCell {
  std::string column;
  std::vector<std::int64_t> rows;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(column, rows);
  }
};

class NotRegistered : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Unrelated : public std::runtime_error {
 public:
  explicit Unrelated(const std::string& what) : std::runtime_error(what) {}
};

/// The payload encode_current_exception() makes for `error`, thrown and caught.
template <class E>
std::vector<std::byte> encode_thrown(const E& error) {
  try {
    throw error;
  } catch (...) {
    return mpaio::detail::encode_current_exception();
  }
}

class ExceptionRegistry : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mpaio::register_exception<RowFault>("test.RowFault");
    mpaio::register_exception<ParseFailure>();  // under its type name
    mpaio::register_exception<BadCell>("test.BadCell");
  }
};

TEST_F(ExceptionRegistry, CodecEncodableTypeComesBackWithItsFields) {
  const std::vector<std::byte> payload = encode_thrown(RowFault{17, -3});
  ASSERT_FALSE(payload.empty());
  const std::exception_ptr original = mpaio::detail::decode_exception(payload);
  ASSERT_TRUE(original);
  try {
    std::rethrow_exception(original);
  } catch (const RowFault& fault) {
    EXPECT_EQ(fault.row, 17U);
    EXPECT_EQ(fault.code, -3);
  } catch (...) {
    FAIL() << "not a RowFault";
  }
}

TEST_F(ExceptionRegistry, CerealSerializableTypeComesBackWithItsFields) {
  const std::exception_ptr original = mpaio::detail::decode_exception(encode_thrown(BadCell{"price", {3, 9}}));
  ASSERT_TRUE(original);
  try {
    std::rethrow_exception(original);
  } catch (const BadCell& cell) {
    EXPECT_EQ(cell.column, "price");
    EXPECT_EQ(cell.rows, (std::vector<std::int64_t>{3, 9}));
  } catch (...) {
    FAIL() << "not a BadCell";
  }
}

TEST_F(ExceptionRegistry, TypeConstructibleFromItsMessageComesBackWithIt) {
  const std::exception_ptr original = mpaio::detail::decode_exception(encode_thrown(ParseFailure("line 4: bad digit")));
  ASSERT_TRUE(original);
  try {
    std::rethrow_exception(original);
  } catch (const ParseFailure& e) {
    EXPECT_STREQ(e.what(), "line 4: bad digit");
  } catch (...) {
    FAIL() << "not a ParseFailure";
  }
}

TEST_F(ExceptionRegistry, UnregisteredTypesAndDerivedTypesGiveNoPayload) {
  EXPECT_TRUE(encode_thrown(NotRegistered("x")).empty());
  EXPECT_TRUE(encode_thrown(std::runtime_error("x")).empty());
  EXPECT_TRUE(encode_thrown(42).empty());
  EXPECT_EQ(mpaio::detail::decode_exception({}), nullptr);
}

TEST_F(ExceptionRegistry, PayloadWithANameUnknownHereDecodesToNothing) {
  std::vector<std::byte> payload = encode_thrown(RowFault{1, 2});
  // The name follows a 4-byte length: change its first letter, so that no registered type has it.
  ASSERT_GT(payload.size(), 5U);
  payload[4] = std::byte{'X'};
  EXPECT_EQ(mpaio::detail::decode_exception(payload), nullptr);
}

TEST_F(ExceptionRegistry, MalformedPayloadsAreDecodeErrors) {
  const std::vector<std::byte> good = encode_thrown(RowFault{1, 2});
  for (std::size_t cut : {std::size_t{1}, std::size_t{3}, std::size_t{6}, good.size() - 1}) {
    EXPECT_THROW((void)mpaio::detail::decode_exception(std::span(good).first(cut)), mpaio::DecodeError) << cut;
  }
  std::vector<std::byte> long_name = good;
  long_name[0] = std::byte{0xff};  // a name longer than the payload
  EXPECT_THROW((void)mpaio::detail::decode_exception(long_name), mpaio::DecodeError);
}

TEST_F(ExceptionRegistry, ANameNamesOneTypeAndATypeHasOneName) {
  EXPECT_NO_THROW(mpaio::register_exception<RowFault>("test.RowFault")) << "registering again is harmless";
  try {
    mpaio::register_exception<Unrelated>("test.RowFault");
    FAIL() << "a second type took a registered name";
  } catch (const mpaio::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("test.RowFault"), std::string::npos) << e.what();
  }
  EXPECT_THROW(mpaio::register_exception<RowFault>("test.RowFault.again"), mpaio::InvalidArgument);
  EXPECT_THROW(mpaio::register_exception<Unrelated>(""), mpaio::InvalidArgument);
}

}  // namespace
