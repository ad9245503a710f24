// Codec: records the fuzzer (fuzz/fuzz_result_decoder.cpp) found to be mis-decoded, kept as regressions.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mpaio/codec.hpp"
#include "mpaio/error.hpp"

namespace {

struct Flagged {
  std::int32_t code = 0;
  bool ok = false;
  std::string text;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(code, ok, text);
  }
};

struct WithVectors {
  std::string name;
  std::vector<double> values;
  std::vector<Flagged> children;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, values, children);
  }
};

template <class T>
std::vector<std::byte> encode(const T& value) {
  std::vector<std::byte> out;
  mpaio::Codec<T>::encode(value, out);
  return out;
}

// An empty vector of doubles inside a cereal result reached memcpy(nullptr, p, 0) while decoding (UBSan:
// "null pointer passed as argument 1"); so did an empty std::vector<double> result.
TEST(CodecRegressions, EmptyVectorsDecodeWithoutANullMemcpy) {
  const WithVectors empty_fields = mpaio::Codec<WithVectors>::decode(encode(WithVectors{}));
  EXPECT_TRUE(empty_fields.name.empty());
  EXPECT_TRUE(empty_fields.values.empty());
  EXPECT_TRUE(empty_fields.children.empty());

  EXPECT_TRUE(mpaio::Codec<std::vector<double>>::decode({}).empty());
  EXPECT_TRUE(mpaio::Codec<std::vector<double>>::decode(encode(std::vector<double>{})).empty());
}

// A bool byte other than 0 or 1 in a cereal result was copied into the bool, which then held an invalid
// value (UBSan: "load of value 49, which is not a valid value for type 'bool'"). It is a DecodeError now.
TEST(CodecRegressions, BoolByteOtherThanZeroOrOneIsADecodeError) {
  std::vector<std::byte> record = encode(Flagged{7, true, "ok"});
  const std::size_t bool_at = sizeof(std::int32_t);
  ASSERT_EQ(record.at(bool_at), std::byte{1});

  for (const auto byte : {std::byte{2}, std::byte{0x31}, std::byte{0xff}}) {
    record[bool_at] = byte;
    EXPECT_THROW((void)mpaio::Codec<Flagged>::decode(record), mpaio::DecodeError) << static_cast<int>(byte);
  }
  record[bool_at] = std::byte{0};
  const Flagged decoded = mpaio::Codec<Flagged>::decode(record);
  EXPECT_EQ(decoded.code, 7);
  EXPECT_FALSE(decoded.ok);
  EXPECT_EQ(decoded.text, "ok");
}

}  // namespace
