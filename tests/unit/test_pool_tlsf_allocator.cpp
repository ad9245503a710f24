// Unit tests of TlsfAllocator over plain memory (a TlsfState, a descriptor table and a journal in one
// buffer; segments are only offsets, never touched): the size mapping and its boundaries, split and merge,
// the size classes, exhaustion of space and of descriptors, the largest block, rollback through the
// journal, and random sequences checked against a model of the used intervals, with the invariants checked
// after every step.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "mpaio/pool_error.hpp"
#include "pool/pool_checker.hpp"
#include "pool/tlsf_allocator.hpp"
#include "pool/undo_journal.hpp"

namespace {

using mpaio::detail::AllocatorCensus;
using mpaio::detail::JournalEntry;
using mpaio::detail::SegmentExtent;
using mpaio::detail::TlsfAllocator;
using mpaio::detail::UndoJournal;
using namespace mpaio::detail::pool;

constexpr std::uint64_t KiB = 1024;

/// The lowest size a block in list `c` may have.
std::uint64_t lower_bound_of(SizeClass c) {
  if (c.fl == 0) return std::uint64_t{c.sl} * kAlign;
  const unsigned f = c.fl + kFlShift - 1;
  return (std::uint64_t{1} << f) + (std::uint64_t{c.sl} << (f - kSlLog2));
}

/// The allocator's shared data and its journal in one buffer, as in a control segment.
struct Arena {
  static constexpr std::uint32_t kBlocks = 4096;
  TlsfState state;
  BlockDesc blocks[kBlocks];
  std::uint32_t journal_length;
  JournalEntry journal[1024];
};

class Allocator {
 public:
  explicit Allocator(std::uint32_t descriptors = Arena::kBlocks)
      : arena_(std::make_unique<Arena>()),
        journal_(std::as_writable_bytes(std::span(arena_.get(), 1)), arena_->journal_length, arena_->journal),
        allocator_(arena_->state, std::span(arena_->blocks, descriptors), journal_) {
    TlsfAllocator::format(arena_->state);
  }
  /// Adds a segment of `size` bytes (a committed transaction); returns its first descriptor.
  std::uint32_t add_segment(std::uint64_t size) {
    const std::uint32_t d = allocator_.add_segment(static_cast<std::uint32_t>(segments_.size()), size);
    if (d != kNone) segments_.push_back({d, size});
    journal_.commit();
    return d;
  }
  std::uint32_t take(std::uint64_t size) {
    const std::uint32_t b = allocator_.take(size);
    journal_.commit();
    return b;
  }
  void give_back(std::uint32_t b) {
    allocator_.give_back(b);
    journal_.commit();
  }
  void flush() {
    while (allocator_.flush_one()) journal_.commit();
  }
  AllocatorCensus check() const { return mpaio::detail::check_allocator(arena_->state, arena_->blocks, segments_, "test"); }
  const BlockDesc& block(std::uint32_t b) const { return arena_->blocks[b]; }
  BlockDesc& block(std::uint32_t b) { return arena_->blocks[b]; }
  const TlsfState& state() const { return arena_->state; }
  TlsfAllocator& raw() { return allocator_; }
  UndoJournal& journal() { return journal_; }
  const Arena& arena() const { return *arena_; }
  /// The free blocks in TLSF (state free), for the assertions.
  std::vector<std::uint32_t> free_blocks() const {
    std::vector<std::uint32_t> out;
    for (std::uint32_t b = 0; b < arena_->state.blocks_hwm; ++b) {
      if (arena_->blocks[b].state == block_free) out.push_back(b);
    }
    return out;
  }

 private:
  std::unique_ptr<Arena> arena_;
  UndoJournal journal_;
  TlsfAllocator allocator_;
  std::vector<SegmentExtent> segments_;
};

TEST(PoolTlsfAllocator, EverySizeMapsToAListWhoseBoundsHoldIt) {
  for (std::uint64_t size = kAlign; size <= (std::uint64_t{1} << 22); size += kAlign) {
    const SizeClass in = insert_class(size);
    ASSERT_LT(in.fl, kFlCount);
    ASSERT_LT(in.sl, kSlCount);
    ASSERT_LE(lower_bound_of(in), size) << size;
    const SizeClass search = search_class(size);
    ASSERT_GE(lower_bound_of(search), size) << size;  // every block from there up fits
    ASSERT_LE(lower_bound_of(in), lower_bound_of(search));
  }
  EXPECT_EQ(insert_class(64), (SizeClass{0, 1}));
  EXPECT_EQ(insert_class(960), (SizeClass{0, 15}));
  EXPECT_EQ(insert_class(1024), (SizeClass{1, 0}));  // the first power of two past the linear range
  EXPECT_EQ(insert_class(1088), (SizeClass{1, 1}));
  EXPECT_EQ(search_class(1088), (SizeClass{1, 1}));  // exactly a class's bound: that class
  EXPECT_EQ(search_class(1152), (SizeClass{1, 2}));
  EXPECT_EQ(search_class(1089), (SizeClass{1, 2}));  // one byte more: the next class
  EXPECT_EQ(insert_class(2048), (SizeClass{2, 0}));
}

TEST(PoolTlsfAllocator, TheLargestBlockIsInTheLastListAndOneMoreAlignmentIsBeyond) {
  EXPECT_EQ(kMaxBlockSize, mpaio::kPoolMaxArrayBytes);
  EXPECT_EQ(search_class(kMaxBlockSize), (SizeClass{kFlCount - 1, kSlCount - 1}));
  EXPECT_EQ(insert_class(kMaxBlockSize), (SizeClass{kFlCount - 1, kSlCount - 1}));
  EXPECT_EQ(search_class(kMaxBlockSize + kAlign).fl, kFlCount);
  EXPECT_EQ(segment_bytes_for(kMaxBlockSize), kMaxBlockSize);
  for (const std::uint64_t size : {kMaxBlockSize / 3 / kAlign * kAlign, kMaxBlockSize - kAlign, kMaxBlockSize}) {
    EXPECT_LE(search_class(size).fl, kFlCount - 1);
    EXPECT_LE(segment_bytes_for(size), kMaxBlockSize);
  }
}

TEST(PoolTlsfAllocator, ASegmentOfSegmentBytesForServesTheRequest) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 300; ++i) {
    const std::uint64_t size = (1 + rng() % (std::uint64_t{1} << (10 + i % 30))) * kAlign;
    const std::uint64_t bytes = segment_bytes_for(size);
    ASSERT_GE(bytes, size);
    ASSERT_LE(bytes, size + size / 16 + 4096) << size;
    ASSERT_EQ(bytes % 4096, 0u);
    Allocator a;
    a.add_segment(bytes);
    ASSERT_NE(a.take(size), kNone) << "a request of " << size << " in a segment of " << bytes;
  }
}

TEST(PoolTlsfAllocator, TakeSplitsAndGiveBackMergesWithBothNeighbours) {
  Allocator a;
  a.add_segment(64 * KiB);
  const std::uint32_t x = a.take(8 * KiB);
  const std::uint32_t y = a.take(8 * KiB);
  const std::uint32_t z = a.take(8 * KiB);
  ASSERT_NE(z, kNone);
  EXPECT_EQ(a.block(x).offset, 0u);
  EXPECT_EQ(a.block(y).offset, 8 * KiB);
  EXPECT_EQ(a.block(z).offset, 16 * KiB);
  EXPECT_EQ(a.check().bytes_in_use, 24 * KiB);
  ASSERT_EQ(a.free_blocks().size(), 1u);  // the rest of the segment, 40 KiB
  EXPECT_EQ(a.block(a.free_blocks()[0]).size, 40 * KiB);

  const std::uint32_t generation = a.block(y).generation;
  a.give_back(y);  // between two used blocks: stays on its own
  EXPECT_EQ(a.block(y).state, block_free);
  EXPECT_EQ(a.block(y).generation, generation + 1);
  EXPECT_EQ(a.free_blocks().size(), 2u);
  a.check();
  a.give_back(x);  // merges with y on its right
  EXPECT_EQ(a.free_blocks().size(), 2u);
  a.check();
  a.give_back(z);  // merges with both: one block again
  ASSERT_EQ(a.free_blocks().size(), 1u);
  EXPECT_EQ(a.block(a.free_blocks()[0]).size, 64 * KiB);
  EXPECT_EQ(a.check().bytes_in_use, 0u);
}

TEST(PoolTlsfAllocator, SmallBlocksAreCachedPerSizeUpToTheLimitAndFlushedBackMerged) {
  Allocator a;
  a.add_segment(1024 * KiB);
  std::vector<std::uint32_t> small;
  for (std::uint32_t i = 0; i < kQuickLimit + 10; ++i) small.push_back(a.take(64));
  for (std::uint32_t b : small) a.give_back(b);
  EXPECT_EQ(a.state().quick_count[0], kQuickLimit);
  a.check();
  const std::uint32_t last_cached = small[kQuickLimit - 1];
  EXPECT_EQ(a.block(last_cached).state, block_quick);
  EXPECT_EQ(a.take(64), last_cached);  // the cache serves again, last in first out
  a.give_back(last_cached);
  a.flush();
  EXPECT_EQ(a.state().quick_count[0], 0u);
  ASSERT_EQ(a.free_blocks().size(), 1u);  // every cached block merged back
  EXPECT_EQ(a.block(a.free_blocks()[0]).size, 1024 * KiB);
  a.check();
}

TEST(PoolTlsfAllocator, TheSizeClassesEndAt4KiB) {
  Allocator a;
  a.add_segment(64 * KiB);
  const std::uint32_t cached = a.take(kQuickMax);
  const std::uint32_t merged = a.take(kQuickMax + kAlign);
  const std::uint32_t guard = a.take(kAlign);
  a.give_back(cached);
  a.give_back(merged);
  EXPECT_EQ(a.block(cached).state, block_quick);
  EXPECT_EQ(a.state().quick_count[kQuickClasses - 1], 1u);
  EXPECT_EQ(a.block(merged).state, block_free);  // into TLSF, merged with the free rest
  EXPECT_EQ(a.block(guard).state, block_used);
  a.check();
}

TEST(PoolTlsfAllocator, ExhaustionReturnsNoneAndChangesNothing) {
  Allocator a;
  a.add_segment(64 * KiB);
  const std::uint32_t all = a.take(64 * KiB);
  ASSERT_NE(all, kNone);
  EXPECT_EQ(a.take(kAlign), kNone);
  EXPECT_EQ(a.journal().size(), 0u);
  a.give_back(all);
  const std::uint32_t half = a.take(32 * KiB);
  EXPECT_EQ(a.take(32 * KiB + kAlign), kNone);  // more than any free block
  EXPECT_NE(a.take(32 * KiB), kNone);
  EXPECT_NE(half, kNone);
  a.check();
}

TEST(PoolTlsfAllocator, WithNoDescriptorLeftABlockIsHandedOutWhole) {
  Allocator a(3);
  a.add_segment(64 * KiB);
  const std::uint32_t first = a.take(16 * KiB);  // split: the second descriptor holds the rest
  const std::uint32_t second = a.take(16 * KiB);  // split: the third
  const std::uint32_t third = a.take(16 * KiB);  // no descriptor for the rest: the whole 32 KiB
  ASSERT_NE(third, kNone);
  EXPECT_EQ(a.block(first).size, 16 * KiB);
  EXPECT_EQ(a.block(second).size, 16 * KiB);
  EXPECT_EQ(a.block(third).size, 32 * KiB);
  EXPECT_EQ(a.add_segment(64 * KiB), kNone);  // the table is full
  a.give_back(second);
  a.give_back(third);  // merging retires a descriptor ...
  EXPECT_NE(a.add_segment(64 * KiB), kNone);  // ... which serves again
  a.check();
}

TEST(PoolTlsfAllocator, TheLargestBlockIsServedAndSplit) {
  Allocator a;
  a.add_segment(kMaxBlockSize);  // bookkeeping only: no memory behind it
  const std::uint32_t whole = a.take(kMaxBlockSize);
  ASSERT_NE(whole, kNone);
  EXPECT_EQ(a.block(whole).size, kMaxBlockSize);
  a.give_back(whole);
  const std::uint32_t small = a.take(kAlign);
  ASSERT_NE(small, kNone);
  EXPECT_EQ(a.take(kMaxBlockSize), kNone);  // 64 bytes are taken
  EXPECT_NE(a.take(kMaxBlockSize - kAlign - (std::uint64_t{1} << 44)), kNone);
  a.check();
}

TEST(PoolTlsfAllocator, AnUndoneTransactionLeavesTheAllocatorAsItWas) {
  Allocator a;
  a.add_segment(256 * KiB);
  a.add_segment(64 * KiB);
  std::vector<std::uint32_t> used;
  for (int i = 0; i < 20; ++i) used.push_back(a.take(static_cast<std::uint64_t>(1 + i % 7) * 2 * KiB));
  for (int i = 0; i < 20; i += 3) a.give_back(used[static_cast<std::size_t>(i)]);
  auto snapshot = [&] {
    std::vector<std::byte> bytes(offsetof(Arena, journal_length));
    std::memcpy(bytes.data(), &a.arena(), bytes.size());
    return bytes;
  };
  const auto before = snapshot();
  (void)a.raw().take(24 * KiB);  // a split
  a.raw().give_back(used[1]);    // a merge
  a.raw().give_back(used[4]);    // into a size class
  (void)a.raw().flush_one();     // out of it, merged
  ASSERT_GT(a.journal().size(), 0u);
  a.journal().undo();
  EXPECT_TRUE(snapshot() == before) << "undo left the allocator changed";
  a.check();
}

/// Random takes and gives back against a model of the used intervals, invariants after every step.
TEST(PoolTlsfAllocator, RandomSequencesMatchAModelOfTheUsedIntervals) {
  for (const unsigned seed : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    Allocator a;
    const std::vector<std::uint64_t> segments{512 * KiB, 128 * KiB, 2048 * KiB};
    for (std::uint64_t s : segments) a.add_segment(s);
    struct Used {
      std::uint32_t block;
      std::uint64_t size;
    };
    std::vector<Used> used;
    std::uint64_t in_use = 0;
    for (int step = 0; step < 4000; ++step) {
      if (used.empty() || rng() % 100 < 55) {
        const std::uint64_t size = (rng() % 4 == 0 ? 65 + rng() % 4000 : 1 + rng() % 64) * kAlign;
        std::uint32_t b = a.take(size);
        if (b == kNone) {
          a.flush();
          b = a.take(size);
        }
        if (b == kNone) {
          // TLSF fails only when no free block reaches the class it searches from: with the size classes
          // flushed, the free blocks are the gaps between used blocks.
          const std::uint64_t bound = lower_bound_of(search_class(size));
          for (std::uint32_t f : a.free_blocks()) ASSERT_LT(a.block(f).size, bound) << "step " << step;
          continue;
        }
        ASSERT_EQ(a.block(b).state, block_used);
        ASSERT_EQ(a.block(b).size, size) << "step " << step;  // multiples of 64: always split exactly
        used.push_back({b, size});
        in_use += size;
      } else {
        const std::size_t i = rng() % used.size();
        a.give_back(used[i].block);
        in_use -= used[i].size;
        used[i] = used.back();
        used.pop_back();
      }
      const AllocatorCensus census = a.check();
      ASSERT_EQ(census.bytes_in_use, in_use) << "step " << step;
      ASSERT_EQ(census.used_blocks, used.size());
      // No two used blocks overlap, and each lies inside its segment.
      std::vector<std::pair<std::uint64_t, std::uint64_t>> intervals;  // (segment << 40 | offset, end)
      for (const Used& u : used) {
        const BlockDesc& d = a.block(u.block);
        ASSERT_LE(d.offset + d.size, segments[d.segment]);
        const std::uint64_t start = (std::uint64_t{d.segment} << 40) | d.offset;
        intervals.emplace_back(start, start + d.size);
      }
      std::sort(intervals.begin(), intervals.end());
      for (std::size_t k = 1; k < intervals.size(); ++k) ASSERT_LE(intervals[k - 1].second, intervals[k].first);
    }
    for (const Used& u : used) a.give_back(u.block);
    a.flush();
    EXPECT_EQ(a.free_blocks().size(), segments.size()) << "everything merged back: one free block per segment";
    EXPECT_EQ(a.check().bytes_in_use, 0u);
  }
}

}  // namespace
