// Codec<T>: round trips of every built-in kind of result, and malformed records, which must throw
// mpaio::DecodeError (never crash, never read past the record, never allocate what a corrupt length claims).
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "mpaio/codec.hpp"
#include "mpaio/error.hpp"

// ---- allocation probe: the largest single operator-new request while a probe is armed ---------------------

namespace {
std::atomic<bool> g_probe_armed{false};
std::atomic<std::size_t> g_largest_request{0};
}  // namespace

void* operator new(std::size_t size) {
  if (g_probe_armed.load(std::memory_order_relaxed)) {
    std::size_t seen = g_largest_request.load(std::memory_order_relaxed);
    while (size > seen && !g_largest_request.compare_exchange_weak(seen, size)) {
    }
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
namespace {
// Out of line, so that GCC does not see free() meet a new-expression (-Wmismatched-new-delete at -O2).
[[gnu::noinline]] void release(void* p) noexcept { std::free(p); }
}  // namespace
void operator delete(void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }

namespace {

/// Records the largest operator-new request made while it lives.
class AllocationProbe {
 public:
  AllocationProbe() {
    g_largest_request = 0;
    g_probe_armed = true;
  }
  ~AllocationProbe() { g_probe_armed = false; }
  AllocationProbe(const AllocationProbe&) = delete;
  AllocationProbe& operator=(const AllocationProbe&) = delete;
  [[nodiscard]] std::size_t largest() const { return g_largest_request.load(); }
};

// ---- types under test ------------------------------------------------------------------------------------

struct Pod {
  std::int32_t a;
  double b;
  char c[3];
  friend bool operator==(const Pod&, const Pod&) = default;
};
static_assert(std::is_trivially_copyable_v<Pod>);

/// A user type that only cereal can carry: strings and vectors inside.
struct Summary {
  std::string label;
  std::vector<std::int32_t> values;
  std::vector<std::string> tags;
  double score = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(label, values, tags, score);
  }
  friend bool operator==(const Summary&, const Summary&) = default;
};

/// A type with no codec at all: not trivially copyable, not a string or vector, no cereal function.
struct NoCodec {
  std::string text;
  std::map<int, int> index;
};

static_assert(mpaio::Encodable<int>);
static_assert(mpaio::Encodable<Pod>);
static_assert(mpaio::Encodable<std::string>);
static_assert(mpaio::Encodable<std::vector<double>>);
static_assert(mpaio::Encodable<std::vector<Pod>>);
static_assert(mpaio::Encodable<Summary>);
static_assert(mpaio::Encodable<std::vector<std::string>>);  // through cereal
static_assert(!mpaio::Encodable<NoCodec>, "a type with no codec must not be Encodable");
static_assert(!mpaio::Encodable<std::map<int, int>>, "cereal/types/map.hpp is not included: no codec");

template <class T>
std::vector<std::byte> encode(const T& value) {
  std::vector<std::byte> out;
  mpaio::Codec<T>::encode(value, out);
  return out;
}

template <class T>
T round_trip(const T& value) {
  return mpaio::Codec<T>::decode(encode(value));
}

std::vector<std::byte> bytes_of(std::initializer_list<unsigned> values) {
  std::vector<std::byte> out;
  for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

template <class T>
void append_raw(std::vector<std::byte>& out, const T& value) {
  const auto* p = reinterpret_cast<const std::byte*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}

Summary sample_summary() {
  return Summary{"chunk [0, 100)", {1, -2, 3, 1 << 30}, {"", "alpha", std::string("nul\0inside", 10)}, 2.5};
}

// ---- round trips -----------------------------------------------------------------------------------------

TEST(CodecRoundTrip, Int) {
  for (int v : {0, 1, -1, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()}) {
    EXPECT_EQ(round_trip(v), v);
  }
  EXPECT_EQ(encode(42).size(), sizeof(int));
}

TEST(CodecRoundTrip, PodStruct) {
  const Pod pod{-7, 3.25, {'x', '\0', 'z'}};
  EXPECT_EQ(round_trip(pod), pod);
  EXPECT_EQ(encode(pod).size(), sizeof(Pod));
}

TEST(CodecRoundTrip, String) {
  EXPECT_EQ(round_trip(std::string("hello")), "hello");
  EXPECT_EQ(round_trip(std::string()), "");
  EXPECT_TRUE(encode(std::string()).empty());
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  binary += std::string("\0\0\xff", 3);
  const std::string back = round_trip(binary);
  EXPECT_EQ(back.size(), binary.size());
  EXPECT_EQ(back, binary);
}

TEST(CodecRoundTrip, VectorOfDouble) {
  const std::vector<double> values{0.0, -1.5, 1e300, std::numeric_limits<double>::denorm_min()};
  EXPECT_EQ(round_trip(values), values);
  EXPECT_EQ(encode(values).size(), values.size() * sizeof(double));
  EXPECT_TRUE(round_trip(std::vector<double>{}).empty());
}

TEST(CodecRoundTrip, VectorOfPod) {
  const std::vector<Pod> values{{1, 1.0, {'a', 'b', 'c'}}, {2, 2.0, {}}, {-3, -0.5, {'\xff', 0, 1}}};
  EXPECT_EQ(round_trip(values), values);
  EXPECT_TRUE(round_trip(std::vector<Pod>{}).empty());
}

TEST(CodecRoundTrip, CerealUserType) {
  const Summary s = sample_summary();
  EXPECT_EQ(round_trip(s), s);
  EXPECT_EQ(round_trip(Summary{}), Summary{});
}

TEST(CodecRoundTrip, VectorOfStringsThroughCereal) {
  const std::vector<std::string> values{"", "a", std::string(1000, 'z')};
  EXPECT_EQ(round_trip(values), values);
}

TEST(CodecRoundTrip, EncodeAppendsAfterExistingBytes) {
  // Executors encode into a reused buffer: encoding must append, and decoding takes just the record.
  std::vector<std::byte> out = bytes_of({0xAA, 0xBB});
  mpaio::Codec<Summary>::encode(sample_summary(), out);
  ASSERT_GT(out.size(), 2U);
  EXPECT_EQ(out[0], std::byte{0xAA});
  EXPECT_EQ(mpaio::Codec<Summary>::decode(std::span(out).subspan(2)), sample_summary());
}

// ---- malformed records -----------------------------------------------------------------------------------

TEST(CodecMalformed, TriviallyCopyableOfTheWrongSize) {
  for (std::size_t n : {0U, 1U, 3U, 5U, 8U}) {
    const std::vector<std::byte> record(n, std::byte{1});
    EXPECT_THROW((void)mpaio::Codec<int>::decode(record), mpaio::DecodeError) << n << " bytes";
  }
  const std::vector<std::byte> short_pod(sizeof(Pod) - 1);
  EXPECT_THROW((void)mpaio::Codec<Pod>::decode(short_pod), mpaio::DecodeError);
  const std::vector<std::byte> long_pod(sizeof(Pod) + 1);
  EXPECT_THROW((void)mpaio::Codec<Pod>::decode(long_pod), mpaio::DecodeError);
}

TEST(CodecMalformed, WrongSizeMessageNamesTheSizes) {
  try {
    (void)mpaio::Codec<std::int64_t>::decode(std::vector<std::byte>(5));
    FAIL() << "no DecodeError";
  } catch (const mpaio::DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find('8'), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find('5'), std::string::npos) << e.what();
  }
}

TEST(CodecMalformed, VectorSizeNotAMultipleOfTheElementSize) {
  for (std::size_t n : {1U, 7U, 9U, 23U}) {
    const std::vector<std::byte> record(n);
    EXPECT_THROW((void)mpaio::Codec<std::vector<double>>::decode(record), mpaio::DecodeError) << n << " bytes";
  }
  const std::vector<std::byte> record(sizeof(Pod) * 2 + 1);
  EXPECT_THROW((void)mpaio::Codec<std::vector<Pod>>::decode(record), mpaio::DecodeError);
}

TEST(CodecMalformed, EveryTruncationOfACerealRecordIsRejected) {
  const std::vector<std::byte> full = encode(sample_summary());
  ASSERT_GT(full.size(), 16U);
  for (std::size_t n = 0; n < full.size(); ++n) {
    // A copy of exactly n bytes, so that ASan catches any read past the record.
    const std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW((void)mpaio::Codec<Summary>::decode(cut), mpaio::DecodeError) << "truncated to " << n << " bytes";
  }
}

TEST(CodecMalformed, TrailingBytesAfterACerealRecordAreRejected) {
  std::vector<std::byte> record = encode(sample_summary());
  record.push_back(std::byte{0});
  try {
    (void)mpaio::Codec<Summary>::decode(record);
    FAIL() << "no DecodeError";
  } catch (const mpaio::DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find("left over"), std::string::npos) << e.what();
  }
}

TEST(CodecMalformed, AllocationProbeSeesDecodeAllocations) {
  // The probe behind the "before allocating" tests must see what decode allocates.
  Summary big;
  big.label.assign(10'000, 'q');
  const std::vector<std::byte> record = encode(big);
  AllocationProbe probe;
  EXPECT_EQ(mpaio::Codec<Summary>::decode(record), big);
  EXPECT_GE(probe.largest(), std::size_t{10'000});
}

TEST(CodecMalformed, HugeStringLengthIsRejectedBeforeAllocating) {
  // Summary starts with its label: a 64-bit length, then the characters. Claim 2^60 characters.
  std::vector<std::byte> record;
  append_raw(record, std::uint64_t{1} << 60);
  record.resize(record.size() + 32, std::byte{'x'});
  AllocationProbe probe;
  EXPECT_THROW((void)mpaio::Codec<Summary>::decode(record), mpaio::DecodeError);
  EXPECT_LT(probe.largest(), std::size_t{4096}) << "decode allocated for the claimed length";
}

TEST(CodecMalformed, HugeVectorLengthIsRejectedBeforeAllocating) {
  // A valid empty label, then values claiming 2^40 int32 elements with 16 bytes behind them.
  std::vector<std::byte> record;
  append_raw(record, std::uint64_t{0});
  append_raw(record, std::uint64_t{1} << 40);
  record.resize(record.size() + 16);
  AllocationProbe probe;
  EXPECT_THROW((void)mpaio::Codec<Summary>::decode(record), mpaio::DecodeError);
  EXPECT_LT(probe.largest(), std::size_t{4096}) << "decode allocated for the claimed length";
}

TEST(CodecMalformed, HugeLengthOfANestedStringIsRejectedBeforeAllocating) {
  // label "", values {}, tags: 1 element whose length claims 2^62 bytes.
  std::vector<std::byte> record;
  append_raw(record, std::uint64_t{0});
  append_raw(record, std::uint64_t{0});
  append_raw(record, std::uint64_t{1});
  append_raw(record, std::uint64_t{1} << 62);
  record.resize(record.size() + 8);
  AllocationProbe probe;
  EXPECT_THROW((void)mpaio::Codec<Summary>::decode(record), mpaio::DecodeError);
  EXPECT_LT(probe.largest(), std::size_t{4096}) << "decode allocated for the claimed length";
}

TEST(CodecMalformed, MaximalLengthDoesNotOverflowTheCheck) {
  std::vector<std::byte> record;
  append_raw(record, std::numeric_limits<std::uint64_t>::max());
  EXPECT_THROW((void)mpaio::Codec<Summary>::decode(record), mpaio::DecodeError);
  EXPECT_THROW((void)mpaio::Codec<std::vector<std::string>>::decode(record), mpaio::DecodeError);
}

TEST(CodecMalformed, GarbageNeverCrashes) {
  // Deterministic pseudo-random records of every small size: decoding either succeeds or throws DecodeError.
  std::uint64_t state = 0x9E3779B97F4A7C15ULL;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::byte> record(next() % 96);
    for (auto& b : record) b = static_cast<std::byte>(next() % 4 == 0 ? 0 : next());  // many zero bytes: small lengths
    try {
      (void)mpaio::Codec<Summary>::decode(record);
    } catch (const mpaio::DecodeError&) {
    }
    try {
      (void)mpaio::Codec<std::vector<std::string>>::decode(record);
    } catch (const mpaio::DecodeError&) {
    }
  }
  SUCCEED();
}

}  // namespace
