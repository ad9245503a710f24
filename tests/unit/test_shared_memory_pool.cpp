// Unit tests of SharedMemoryPool in one process: allocation, alignment, size classes and TLSF, growth
// (requests larger than a segment), references, transfers, stale and malformed references, empty handles,
// the PoolArray codec, invariants, and threads of one process sharing a pool.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mpaio/shared_memory_pool.hpp"

namespace {

using mpaio::PoolArray;
using mpaio::SharedMemoryPool;

mpaio::PoolOptions small_pool() {
  return {.segment_size = std::size_t{1} << 20, .max_segments = 8, .max_blocks = 1u << 14, .max_references = 1u << 15};
}

TEST(SharedMemoryPool, AllocatesTypedArraysAlignedTo64Bytes) {
  auto pool = SharedMemoryPool::create(small_pool());
  auto a = pool.allocate<double>({3, 4});
  auto b = pool.allocate<std::uint8_t>({1});
  auto c = pool.allocate<std::int16_t>({5, 6, 7});
  EXPECT_EQ(a.size(), 12u);
  EXPECT_EQ(c.size(), 210u);
  EXPECT_EQ(std::vector<std::size_t>(a.shape().begin(), a.shape().end()), (std::vector<std::size_t>{3, 4}));
  for (const void* p : {static_cast<const void*>(a.data()), static_cast<const void*>(b.data()), static_cast<const void*>(c.data())}) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u);
  }
  std::iota(a.begin(), a.end(), 0.0);
  EXPECT_EQ(a.view().row(2)[3], 11.0);
  const auto s = pool.stats();
  EXPECT_EQ(s.blocks_in_use, 3u);
  EXPECT_EQ(s.bytes_in_use, 128u + 64u + 448u);
  EXPECT_EQ(s.references, 3u);
  pool.check_invariants();
}

TEST(SharedMemoryPool, MetaNamesTheSegmentAndOffsetLikeASharedArray) {
  auto pool = SharedMemoryPool::create(small_pool());
  auto a = pool.allocate<float>({8});
  auto b = pool.allocate<float>({8});
  const mpaio::ArrayMeta meta = b.meta();
  EXPECT_TRUE(meta.shm_name.starts_with("memfd:mpaio-"));
  EXPECT_EQ(meta.dtype, mpaio::dtype_of<float>());
  EXPECT_EQ(meta.shape, (std::vector<std::size_t>{8}));
  EXPECT_NE(meta.offset, a.meta().offset);
  EXPECT_EQ(meta.offset % 64, 0u);
}

TEST(SharedMemoryPool, FreedWithTheLastHandleAndZeroBytesInUse) {
  auto pool = SharedMemoryPool::create(small_pool());
  {
    auto a = pool.allocate<std::int32_t>({1000});
    auto again = pool.attach<std::int32_t>(a.ref());
    EXPECT_EQ(again.data(), a.data());
    EXPECT_EQ(pool.stats().references, 2u);
    a.reset();
    EXPECT_EQ(pool.stats().blocks_in_use, 1u);
  }
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  EXPECT_EQ(pool.stats().references, 0u);
  pool.check_invariants();
}

TEST(SharedMemoryPool, StaleReferenceFailsClearly) {
  auto pool = SharedMemoryPool::create(small_pool());
  auto a = pool.allocate<std::int64_t>({16});
  const mpaio::PoolArrayRef ref = a.ref();
  a.reset();
  auto b = pool.allocate<std::int64_t>({16});  // most likely the same block, a new generation
  try {
    (void)pool.attach<std::int64_t>(ref);
    FAIL() << "attach of a freed array succeeded";
  } catch (const mpaio::StalePoolReference& e) {
    EXPECT_NE(std::string(e.what()).find("was freed"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)pool.attach<float>(b.ref()), mpaio::InvalidArgument);
  auto other = SharedMemoryPool::create(small_pool());
  EXPECT_THROW((void)other.attach<std::int64_t>(b.ref()), mpaio::StalePoolReference);
}

TEST(SharedMemoryPool, TransferTokensAreGoodOnce) {
  auto pool = SharedMemoryPool::create(small_pool());
  auto a = pool.allocate<float>({4, 4});
  const mpaio::PoolTransfer t1 = pool.send(a);
  const mpaio::PoolTransfer t2 = pool.send(a);  // the same array sent twice: two references
  a.reset();
  EXPECT_EQ(pool.stats().in_flight, 2u);
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);
  auto r1 = pool.adopt<float>(t1);
  EXPECT_THROW((void)pool.adopt<float>(t1), mpaio::StalePoolReference);
  pool.drop(t2);
  EXPECT_THROW(pool.drop(t2), mpaio::StalePoolReference);
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);
  r1.reset();
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  pool.check_invariants();
}

TEST(SharedMemoryPool, RowReferencesViewPartOfAnArray) {
  auto pool = SharedMemoryPool::create(small_pool());
  auto a = pool.allocate<std::int32_t>({10, 3});
  std::iota(a.begin(), a.end(), 0);
  auto rows = pool.attach<std::int32_t>(a.ref(mpaio::Range{4, 6}));
  EXPECT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0], 12);
  EXPECT_EQ(rows.meta().offset, a.meta().offset + 12 * sizeof(std::int32_t));
  EXPECT_THROW((void)a.ref(mpaio::Range{9, 11}), mpaio::InvalidArgument);
}

TEST(SharedMemoryPool, GrowsBySegmentsAndCoalescesFreeSpace) {
  auto pool = SharedMemoryPool::create(small_pool());
  std::vector<PoolArray<std::uint8_t>> arrays;
  for (int i = 0; i < 40; ++i) arrays.push_back(pool.allocate<std::uint8_t>({100'000}));
  EXPECT_GE(pool.stats().segments, 4u);
  arrays.clear();
  pool.check_invariants();
  // Everything coalesced again: a segment-sized array fits without a new segment.
  const auto segments = pool.stats().segments;
  auto big = pool.allocate<std::uint8_t>({1u << 20});
  EXPECT_EQ(pool.stats().segments, segments);
  auto huge = pool.allocate<std::uint8_t>({3u << 20});  // larger than a segment: a segment of its own
  EXPECT_EQ(pool.stats().segments, segments + 1);
  pool.check_invariants();
}

TEST(SharedMemoryPool, ExhaustionNamesTheNumbers) {
  auto pool = SharedMemoryPool::create({.segment_size = 1 << 16, .max_segments = 1, .max_blocks = 64, .max_references = 64});
  auto a = pool.allocate<std::uint8_t>({40'000});
  try {
    (void)pool.allocate<std::uint8_t>({40'000});
    FAIL();
  } catch (const mpaio::PoolExhausted& e) {
    EXPECT_EQ(e.requested(), 40'000u);
    EXPECT_GT(e.free_bytes(), 20'000u);
  }
  EXPECT_THROW((void)pool.allocate<std::uint8_t>({0}), mpaio::InvalidArgument);
}

// Issue 11 item 8: an array's byte size had no upper bound. Near SIZE_MAX the rounding to 64 bytes wrapped
// to 0 and the allocator read a size class far out of bounds (SIGSEGV); above 2^64 - 2^59 the size of the
// segment to add wrapped, so every failed call added two segments; from 2^49 bytes on, the TLSF lists were
// indexed out of bounds. Every size above the largest block is rejected, naming it, and nothing changes.
// (A named pool: /dev/shm has a size limit, so a code that tried to reserve such a segment would fail at
// once instead of filling memory.)
TEST(SharedMemoryPool, ArraysLargerThanTheLargestBlockAreRejectedNamingTheSize) {
  auto pool = SharedMemoryPool::create({.kind = mpaio::SegmentKind::named, .segment_size = 1 << 20, .max_segments = 8,
                                        .max_blocks = 1024, .max_references = 1024});
  const auto before = pool.stats();
  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
  constexpr std::size_t kLargestBlock = (std::size_t{1} << 49) - (std::size_t{1} << 44);
  for (const std::size_t n : {kMax, kMax - 63, kMax - (std::size_t{1} << 58), std::size_t{1} << 63,
                              std::size_t{1} << 49, kLargestBlock + 1}) {
    SCOPED_TRACE("request of " + std::to_string(n) + " bytes");
    try {
      (void)pool.allocate<std::uint8_t>({n});
      ADD_FAILURE() << "allocated";
    } catch (const mpaio::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(n)), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW((void)pool.allocate<std::uint64_t>({kMax / 8}), mpaio::InvalidArgument);  // kMax - 7 bytes
  const auto after = pool.stats();
  EXPECT_EQ(after.segments, before.segments);
  EXPECT_EQ(after.bytes_total, before.bytes_total);
  pool.check_invariants();
}

// Issue 11 item 8: PoolOptions::segment_size was not checked: SIZE_MAX wrapped to 0 when rounded to a page,
// and a segment of 2^49 bytes or more is one free block that the TLSF lists cannot index.
TEST(SharedMemoryPool, ASegmentSizeAboveTheLargestBlockIsRejected) {
  constexpr std::size_t kLargestBlock = (std::size_t{1} << 49) - (std::size_t{1} << 44);
  for (const std::size_t size : {std::numeric_limits<std::size_t>::max(), std::size_t{1} << 49, kLargestBlock + 1}) {
    SCOPED_TRACE("segment_size " + std::to_string(size));
    try {
      (void)SharedMemoryPool::create({.kind = mpaio::SegmentKind::named, .segment_size = size});
      ADD_FAILURE() << "created";
    } catch (const mpaio::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("segment_size"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::to_string(size)), std::string::npos) << e.what();
    }
  }
}

TEST(SharedMemoryPool, RandomWorkloadKeepsInvariants) {
  auto pool = SharedMemoryPool::create(small_pool());
  std::mt19937 rng(7);
  std::vector<PoolArray<std::uint8_t>> live;
  for (int step = 0; step < 20'000; ++step) {
    if (live.empty() || (live.size() < 150 && rng() % 100 < 55)) {
      const std::size_t n = rng() % 4 == 0 ? 4096 + rng() % 200'000 : 1 + rng() % 4096;
      auto a = pool.allocate<std::uint8_t>({n});
      a[0] = static_cast<std::uint8_t>(step);
      a[n - 1] = static_cast<std::uint8_t>(step);
      live.push_back(std::move(a));
    } else {
      std::swap(live[rng() % live.size()], live.back());
      live.pop_back();
    }
    if (step % 2000 == 0) pool.check_invariants();
  }
  live.clear();
  pool.check_invariants();
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
}

TEST(SharedMemoryPool, ThreadsAllocateFreeAndTransferAtOnce) {
  // Small segments, so that the threads also grow the pool at the same time. Each array carries its
  // thread and step in every byte it owns checked: two threads given the same block would see each other's.
  auto pool = SharedMemoryPool::create({.segment_size = std::size_t{256} << 10, .max_segments = 32,
                                        .max_blocks = 1u << 14, .max_references = 1u << 15});
  constexpr int kThreads = 4;
  constexpr int kSteps = 5'000;
  std::vector<std::string> errors(kThreads);
  auto body = [&](int id) {
    std::mt19937 rng(static_cast<unsigned>(id));
    struct Held {
      PoolArray<std::uint8_t> array;
      std::uint8_t mark;
    };
    std::vector<Held> live;
    for (int step = 0; step < kSteps && errors[id].empty(); ++step) {
      if (live.empty() || (live.size() < 40 && rng() % 100 < 55)) {
        const std::size_t n = rng() % 8 == 0 ? 4096 + rng() % 60'000 : 1 + rng() % 2048;
        const auto mark = static_cast<std::uint8_t>(id * 64 + step % 64);
        auto a = pool.allocate<std::uint8_t>({n});
        std::fill(a.begin(), a.end(), mark);
        if (rng() % 4 == 0) a = pool.adopt<std::uint8_t>(pool.send(a));  // through a transfer and back
        live.push_back({std::move(a), mark});
      } else {
        std::swap(live[rng() % live.size()], live.back());
        const Held& h = live.back();
        if (std::any_of(h.array.begin(), h.array.end(), [&](std::uint8_t b) { return b != h.mark; })) {
          errors[id] = "thread " + std::to_string(id) + ": an array of " + std::to_string(h.array.size()) +
                       " bytes was overwritten by another allocation";
        }
        live.pop_back();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int id = 0; id < kThreads; ++id) threads.emplace_back(body, id);
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  pool.check_invariants();
  const auto s = pool.stats();
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.references, 0u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_GT(s.segments, 1u) << "the threads were meant to grow the pool";
}

/// Allocates each of `sizes` bytes in `pool`: each must add exactly one segment, no larger than the request
/// rounded up to its allocator size class (1/16 of its power of two) and to a page.
void expect_one_fitting_segment_each(SharedMemoryPool& pool, std::initializer_list<std::size_t> sizes) {
  std::vector<PoolArray<std::uint8_t>> arrays;
  for (const std::size_t n : sizes) {
    SCOPED_TRACE("request of " + std::to_string(n) + " bytes");
    const auto before = pool.stats();
    auto a = pool.allocate<std::uint8_t>({n});
    a[0] = 1;
    a[n - 1] = 2;
    const auto after = pool.stats();
    EXPECT_EQ(after.segments, before.segments + 1);
    EXPECT_GE(after.bytes_total - before.bytes_total, n);
    EXPECT_LE(after.bytes_total - before.bytes_total, n + n / 16 + 4096);
    arrays.push_back(std::move(a));
  }
  pool.check_invariants();
}

TEST(SharedMemoryPool, ARequestLargerThanASegmentGetsOneSegmentItFitsIn) {
  {
    auto pool = SharedMemoryPool::create();  // 64 MiB segments
    expect_one_fitting_segment_each(pool, {100'000'000, (std::size_t{64} << 20) + 64, (std::size_t{68} << 20) + 1});
  }
  {
    auto pool = SharedMemoryPool::create(small_pool());  // 1 MiB segments
    expect_one_fitting_segment_each(pool, {(1u << 20) + 64, (1u << 20) + 4096, (1u << 20) + 65'537, 3'000'001});
  }
}

TEST(SharedMemoryPool, ASegmentSizeBetweenSizeClassesStillServesRequestsUpToIt) {
  mpaio::PoolOptions options = small_pool();
  options.segment_size = (1u << 20) + 4096;  // not a boundary of the allocator's size classes
  auto pool = SharedMemoryPool::create(options);
  EXPECT_EQ(pool.stats().bytes_total, (1u << 20) + 4096);  // the first segment has exactly segment_size
  auto a = pool.allocate<std::uint8_t>({(1u << 20) + 100});
  a[a.size() - 1] = 1;
  EXPECT_EQ(pool.stats().segments, 2u);  // the first segment is one class too small for it
  pool.check_invariants();
}

TEST(SharedMemoryPool, MalformedReferencesAreRejectedNamingTheField) {
  auto pool = SharedMemoryPool::create(small_pool());
  auto a = pool.allocate<std::int64_t>({8});
  auto expect_rejected = [&](mpaio::PoolArrayRef bad, const std::string& field) {
    try {
      (void)pool.attach<std::int64_t>(bad);
      ADD_FAILURE() << "attach accepted a reference with a bad " << field;
    } catch (const mpaio::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  mpaio::PoolArrayRef bad = a.ref();
  bad.ndim = mpaio::kPoolMaxDims + 1;
  expect_rejected(bad, "ndim");
  bad = a.ref();
  bad.ndim = 2;
  bad.shape[0] = (std::uint64_t{1} << 61) + 1;  // x 8 bytes wraps to 8 bytes
  bad.shape[1] = 1;
  expect_rejected(bad, "shape");
  bad = a.ref();
  bad.offset = std::numeric_limits<std::uint64_t>::max() - 7;  // offset + 64 bytes wraps
  expect_rejected(bad, "offset");
  EXPECT_EQ(pool.stats().references, 1u);

  const mpaio::PoolTransfer good = pool.send(a);
  mpaio::PoolTransfer forged = good;
  forged.array.ndim = 100;
  try {
    (void)pool.adopt<std::int64_t>(forged);
    ADD_FAILURE() << "adopt accepted a transfer with ndim 100";
  } catch (const mpaio::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("ndim"), std::string::npos) << e.what();
  }
  auto adopted = pool.adopt<std::int64_t>(good);  // the real token is still good
  EXPECT_EQ(adopted.data(), a.data());
  pool.check_invariants();
}

TEST(SharedMemoryPool, AnEmptyHandleHasNoReferenceOrMeta) {
  PoolArray<float> empty;
  EXPECT_THROW((void)empty.ref(), mpaio::InvalidArgument);
  EXPECT_THROW((void)empty.ref(mpaio::Range{0, 0}), mpaio::InvalidArgument);
  EXPECT_THROW((void)empty.meta(), mpaio::InvalidArgument);
  auto pool = SharedMemoryPool::create(small_pool());
  auto a = pool.allocate<float>({4});
  PoolArray<float> moved = std::move(a);
  try {
    (void)a.meta();  // NOLINT(bugprone-use-after-move): moved-from handles are empty
    FAIL() << "meta() of a moved-from handle";
  } catch (const mpaio::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
  }
}

TEST(SharedMemoryPool, DecodingAResultOfTheWrongTypeDropsItsTransfer) {
  auto pool = SharedMemoryPool::create(small_pool());
  std::vector<std::byte> bytes;
  {
    auto a = pool.allocate<float>({16});
    mpaio::Codec<PoolArray<float>>::encode(a, bytes);
  }
  EXPECT_EQ(pool.stats().in_flight, 1u);
  EXPECT_THROW((void)mpaio::Codec<PoolArray<std::int32_t>>::decode(bytes), mpaio::DecodeError);
  EXPECT_EQ(pool.stats().in_flight, 0u);
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);

  {
    auto a = pool.allocate<float>({16});
    bytes.clear();
    mpaio::Codec<PoolArray<float>>::encode(a, bytes);
  }
  mpaio::PoolTransfer t;
  std::memcpy(&t, bytes.data(), sizeof t);
  t.array.ndim = mpaio::kPoolMaxDims + 1;
  std::memcpy(bytes.data(), &t, sizeof t);
  EXPECT_THROW((void)mpaio::Codec<PoolArray<float>>::decode(bytes), mpaio::DecodeError);
  EXPECT_EQ(pool.stats().in_flight, 0u);
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  pool.check_invariants();
}

TEST(SharedMemoryPool, FoundByIdAndMovable) {
  auto pool = SharedMemoryPool::create(small_pool());
  const auto id = pool.id();
  EXPECT_EQ(SharedMemoryPool::find(id), &pool);
  SharedMemoryPool moved = std::move(pool);
  EXPECT_EQ(SharedMemoryPool::find(id), &moved);
  EXPECT_EQ(moved.owner(), ::getpid());
}

TEST(SharedMemoryPool, NamedPoolAttachesByName) {
  auto pool = SharedMemoryPool::create({.kind = mpaio::SegmentKind::named, .segment_size = 1 << 20, .max_blocks = 1024,
                                        .max_references = 1024});
  EXPECT_TRUE(pool.name().starts_with("/mpaio-"));
  auto a = pool.allocate<std::int32_t>({4});
  a[3] = 42;
  EXPECT_TRUE(a.meta().shm_name.starts_with("/mpaio-"));
}

}  // namespace
