// Unit tests of the pool checker over plain memory: a consistent state passes, and each kind of damage is
// reported by what it breaks (a block chain, unmerged free blocks, a bitmap, a size class count, a journal
// left open, a counter, a reference to a free block).

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mpaio/pool_error.hpp"
#include "pool/control_segment.hpp"
#include "pool/pool_checker.hpp"
#include "pool/tlsf_allocator.hpp"
#include "pool/undo_journal.hpp"

namespace {

using mpaio::PoolCorrupted;
using mpaio::detail::check_allocator;
using mpaio::detail::check_control;
using mpaio::detail::SegmentExtent;
using mpaio::detail::TlsfAllocator;
using mpaio::detail::UndoJournal;
using namespace mpaio::detail::pool;

/// A control header with its tables in one buffer: two segments, three used blocks (one of them cached
/// in a size class after its free), references held by the owner's slot.
struct Control {
  static constexpr std::uint32_t kBlocks = 64;
  static constexpr std::uint32_t kRecords = 16;
  ControlHeader h;
  BlockDesc blocks[kBlocks];
  RefRecord records[kRecords];
};

class Fixture {
 public:
  Fixture() : c_(std::make_unique<Control>()) {
    ControlHeader& h = c_->h;
    TlsfAllocator::format(h.tlsf);
    h.free_record_head = kNone;
    h.processes[0] = ProcessSlot{1, 1, slot_live};
    UndoJournal journal(std::as_writable_bytes(std::span(c_.get(), 1)), h.journal_length, h.journal);
    TlsfAllocator allocator(h.tlsf, c_->blocks, journal);
    for (std::uint32_t s = 0; s < 2; ++s) {
      h.segments[s].first_block = allocator.add_segment(s, 64 * 1024);
      h.segments[s].size = 64 * 1024;
      h.bytes_total += 64 * 1024;
    }
    h.segment_count = 2;
    for (const std::uint64_t size : {std::uint64_t{8192}, std::uint64_t{128}, std::uint64_t{5000 / 64 * 64 + 64}}) {
      const std::uint32_t b = allocator.take(size);
      used_.push_back(b);
      c_->blocks[b].refs = 1;
      c_->records[h.records_hwm] = RefRecord{h.records_hwm + 1, b, record_held, 0, kNone};
      ++h.records_hwm;
      h.bytes_in_use += size;
      ++h.blocks_in_use;
      ++h.references;
    }
    cached_ = allocator.take(256);
    allocator.give_back(cached_);
    journal.commit();
  }
  void check() const { check_control(c_->h, c_->blocks, c_->records, "pool test"); }
  void check_allocator_only() const {
    std::vector<SegmentExtent> segments;
    for (std::uint32_t s = 0; s < c_->h.segment_count; ++s) segments.push_back({c_->h.segments[s].first_block, c_->h.segments[s].size});
    (void)check_allocator(c_->h.tlsf, c_->blocks, segments, "pool test");
  }
  /// The message of the PoolCorrupted that check() throws ("" when it passes).
  std::string violation() const {
    try {
      check();
    } catch (const PoolCorrupted& e) {
      return e.what();
    }
    return "";
  }
  Control& c() { return *c_; }
  std::uint32_t used(std::size_t i) const { return used_[i]; }
  std::uint32_t cached() const { return cached_; }

 private:
  std::unique_ptr<Control> c_;
  std::vector<std::uint32_t> used_;
  std::uint32_t cached_ = kNone;
};

void expect_violation(const Fixture& f, const std::string& part) {
  const std::string what = f.violation();
  EXPECT_NE(what.find("pool test: "), std::string::npos) << what;
  EXPECT_NE(what.find(part), std::string::npos) << what;
}

TEST(PoolChecker, AConsistentStatePasses) {
  Fixture f;
  EXPECT_EQ(f.violation(), "");
  f.check_allocator_only();
}

TEST(PoolChecker, ABlockThatBreaksItsSegmentsChainIsReported) {
  Fixture f;
  f.c().blocks[f.used(0)].size += 64;
  expect_violation(f, "breaks the chain");
}

TEST(PoolChecker, TwoFreeBlocksSideBySideAreReported) {
  Fixture f;
  const std::uint32_t b = f.used(0);  // at offset 0 of segment 0; the next used block follows it
  f.c().blocks[b].state = block_free;  // freed without being merged or listed
  const std::string what = f.violation();
  EXPECT_NE(what.find("free blocks"), std::string::npos) << what;  // not merged, or not listed
}

TEST(PoolChecker, AWrongBitmapIsReported) {
  Fixture f;
  std::uint32_t free_block = kNone;
  for (std::uint32_t b = 0; b < f.c().h.tlsf.blocks_hwm; ++b) {
    if (f.c().blocks[b].state == block_free) free_block = b;
  }
  ASSERT_NE(free_block, kNone);
  const SizeClass c = insert_class(f.c().blocks[free_block].size);
  f.c().h.tlsf.sl_bitmap[c.fl] &= ~(1u << c.sl);
  expect_violation(f, "bit");
}

TEST(PoolChecker, ASizeClassThatMiscountsIsReported) {
  Fixture f;
  ++f.c().h.tlsf.quick_count[256 / kAlign - 1];
  expect_violation(f, "size class 3 counts 2 but lists 1");
}

TEST(PoolChecker, AJournalLeftOpenIsReported) {
  Fixture f;
  f.c().h.journal_length = 2;
  expect_violation(f, "journal holds 2 entries");
}

TEST(PoolChecker, CountersThatDisagreeWithTheBlocksAreReported) {
  Fixture f;
  f.c().h.bytes_in_use += 64;
  expect_violation(f, "bytes_in_use");
  Fixture g;
  g.c().h.references = 7;
  expect_violation(g, "counters say 7 held");
}

TEST(PoolChecker, AReferenceToABlockThatIsNotAllocatedIsReported) {
  Fixture f;
  f.c().records[0].block = f.cached();
  expect_violation(f, "not allocated");
}

TEST(PoolChecker, AReferenceOfAFreeProcessSlotIsReported) {
  Fixture f;
  f.c().records[1].holder = 5;
  expect_violation(f, "process slot 5");
}

}  // namespace
