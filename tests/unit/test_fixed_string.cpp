// FixedBytes / FixedUnicode: construction from UTF-8, limits, malformed input, numpy's layout.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "mpaio/error.hpp"
#include "mpaio/fixed_string.hpp"

namespace {

using mpaio::FixedBytes;
using mpaio::FixedUnicode;

// numpy's layout: |S<N> is N bytes, <U<N> is N UTF-32 code units, no header, no padding.
static_assert(sizeof(FixedBytes<1>) == 1);
static_assert(sizeof(FixedBytes<8>) == 8);
static_assert(sizeof(FixedBytes<13>) == 13);
static_assert(alignof(FixedBytes<8>) == 1);
static_assert(sizeof(FixedUnicode<1>) == 4);
static_assert(sizeof(FixedUnicode<6>) == 24);
static_assert(sizeof(FixedUnicode<7>) == 28);
static_assert(alignof(FixedUnicode<6>) == 4);
static_assert(std::is_trivially_copyable_v<FixedBytes<8>>);
static_assert(std::is_trivially_copyable_v<FixedUnicode<6>>);
static_assert(std::is_standard_layout_v<FixedUnicode<6>>);

TEST(FixedBytes, FromAsciiIsNulPadded) {
  const FixedBytes<8> b("abc");
  EXPECT_EQ(b.view(), "abc");
  EXPECT_EQ(b.str(), "abc");
  EXPECT_EQ(std::memcmp(b.chars.data(), "abc\0\0\0\0\0", 8), 0);
  EXPECT_EQ(FixedBytes<8>().view(), "");
  EXPECT_EQ(FixedBytes<3>("xyz").view(), "xyz") << "exactly N bytes fills it with no terminator";
}

TEST(FixedBytes, HoldsUtf8BytesAsIs) {
  const std::string text = "h\xc3\xa9llo";  // "héllo": 6 bytes
  const FixedBytes<6> b(text);
  EXPECT_EQ(b.str(), text);
  EXPECT_EQ(b.view().size(), 6u);
}

TEST(FixedBytes, TooLongIsAnError) {
  try {
    const FixedBytes<4> b("abcde");
    FAIL() << "stored " << b.str();
  } catch (const mpaio::InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("abcde"), std::string::npos) << what;
    EXPECT_NE(what.find('5'), std::string::npos) << what;
    EXPECT_NE(what.find("FixedBytes<4>"), std::string::npos) << what;
  }
  EXPECT_THROW(FixedBytes<5>("h\xc3\xa9llo"), mpaio::InvalidArgument) << "5 characters but 6 bytes";
}

TEST(FixedBytes, EqualityComparesValues) {
  EXPECT_EQ(FixedBytes<8>("abc"), FixedBytes<8>("abc"));
  EXPECT_NE(FixedBytes<8>("abc"), FixedBytes<8>("abd"));
  EXPECT_NE(FixedBytes<8>("abc"), FixedBytes<8>("ab"));
}

TEST(FixedUnicode, FromAscii) {
  const FixedUnicode<6> u("foo_99");
  EXPECT_EQ(u.view(), U"foo_99");
  EXPECT_EQ(u.str(), "foo_99");
  const FixedUnicode<6> short_one("ab");
  EXPECT_EQ(short_one.chars[0], U'a');
  EXPECT_EQ(short_one.chars[1], U'b');
  for (std::size_t i = 2; i < 6; ++i) EXPECT_EQ(short_one.chars[i], U'\0');
}

TEST(FixedUnicode, FromNonAsciiUtf8) {
  // 2-, 3- and 4-byte sequences: é (U+00E9), 日本 (U+65E5 U+672C), 😀 (U+1F600).
  const std::string text = "\xc3\xa9\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x98\x80";
  const FixedUnicode<4> u(text);
  EXPECT_EQ(u.chars[0], U'\u00e9');
  EXPECT_EQ(u.chars[1], U'\u65e5');
  EXPECT_EQ(u.chars[2], U'\u672c');
  EXPECT_EQ(u.chars[3], U'\U0001F600');
  EXPECT_EQ(u.view().size(), 4u);
  EXPECT_EQ(u.str(), text) << "str() re-encodes to the same UTF-8";
  // Boundaries of each encoding length round trip too.
  for (const std::string s : {"\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
                              "\xf4\x8f\xbf\xbf"}) {
    EXPECT_EQ(FixedUnicode<1>(s).str(), s);
  }
}

TEST(FixedUnicode, LengthCountsCharactersNotBytes) {
  EXPECT_NO_THROW(FixedUnicode<5>("h\xc3\xa9llo"));  // 5 characters in 6 bytes
  try {
    const FixedUnicode<4> u("h\xc3\xa9llo");
    FAIL() << "stored " << u.str();
  } catch (const mpaio::InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("FixedUnicode<4>"), std::string::npos) << what;
    EXPECT_NE(what.find("5 characters"), std::string::npos) << what;
  }
}

TEST(FixedUnicode, MalformedUtf8IsAnError) {
  const std::vector<std::string> malformed = {
      "\x80",                      // lone continuation byte
      "a\xbf",                     // continuation byte after ASCII
      "\xc3",                      // cut short at the end
      "\xe6\x97",                  // cut short at the end
      "\xf0\x9f\x98",              // cut short at the end
      "\xc3\x28",                  // bad continuation byte
      "\xe6\x28\xa5",              // bad continuation byte
      "\xff",                      // never valid
      "\xf8\x88\x80\x80\x80",      // 5-byte form (obsolete)
      "\xc0\xaf",                  // overlong '/'
      "\xc1\xbf",                  // overlong
      "\xe0\x80\xaf",              // overlong '/'
      "\xf0\x80\x80\xaf",          // overlong '/'
      "\xed\xa0\x80",              // UTF-16 surrogate U+D800
      "\xed\xbf\xbf",              // UTF-16 surrogate U+DFFF
      "\xf4\x90\x80\x80",          // U+110000, beyond Unicode
  };
  for (const std::string& s : malformed) {
    try {
      const FixedUnicode<8> u(s);
      ADD_FAILURE() << "accepted malformed UTF-8 of " << s.size() << " bytes as " << u.view().size()
                    << " characters, first U+" << std::hex << static_cast<unsigned>(u.chars[0]);
    } catch (const mpaio::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
    }
  }
}

TEST(FixedUnicode, EqualityComparesValues) {
  EXPECT_EQ(FixedUnicode<6>("foo_1"), FixedUnicode<6>("foo_1"));
  EXPECT_NE(FixedUnicode<6>("foo_1"), FixedUnicode<6>("foo_10"));
}

}  // namespace
