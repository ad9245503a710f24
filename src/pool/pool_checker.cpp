#include "pool/pool_checker.hpp"

#include <string>
#include <vector>

#include <fmt/format.h>

#include "mpaio/pool_error.hpp"

namespace mpaio::detail {

using namespace pool;

namespace {

/// Throws the violation `what` of `who`.
struct Fail {
  std::string_view who;
  [[noreturn]] void operator()(const std::string& what) const { throw PoolCorrupted(fmt::format("{}: {}", who, what)); }
};

}  // namespace

AllocatorCensus check_allocator(const TlsfState& state, std::span<const BlockDesc> blocks,
                                std::span<const SegmentExtent> segments, std::string_view who) {
  const Fail fail{who};
  if (state.blocks_hwm > blocks.size()) fail(fmt::format("{} descriptors used of {}", state.blocks_hwm, blocks.size()));
  const std::uint32_t nblocks = state.blocks_hwm;
  std::vector<std::uint8_t> seen(nblocks, 0);
  AllocatorCensus census;
  std::uint64_t free_count = 0, quick_total = 0;
  for (std::uint32_t s = 0; s < segments.size(); ++s) {
    std::uint64_t expect = 0;
    std::uint32_t prev = kNone;
    bool prev_free = false;
    for (std::uint32_t b = segments[s].first_block; b != kNone; b = blocks[b].phys_next) {
      if (b >= nblocks || seen[b]) fail(fmt::format("segment {}: chain reaches block {} twice or out of range", s, b));
      seen[b] = 1;
      const BlockDesc& d = blocks[b];
      if (d.segment != s || d.offset != expect || d.phys_prev != prev || d.size == 0 || d.size % kAlign != 0) {
        fail(fmt::format("segment {}: block {} (offset {}, size {}, prev {}) breaks the chain at offset {}", s, b, d.offset,
                         d.size, d.phys_prev, expect));
      }
      if (d.state == block_free) {
        if (prev_free) fail(fmt::format("segment {}: free blocks {} and {} are not merged", s, prev, b));
        ++free_count;
      } else if (d.state == block_used) {
        census.bytes_in_use += d.size;
        ++census.used_blocks;
      } else if (d.state == block_quick) {
        ++quick_total;
      } else {
        fail(fmt::format("segment {}: block {} in the chain is an unused descriptor", s, b));
      }
      prev_free = d.state == block_free;
      expect += d.size;
      prev = b;
    }
    if (expect != segments[s].size) fail(fmt::format("segment {}: blocks cover {} of {} bytes", s, expect, segments[s].size));
    census.bytes_total += segments[s].size;
  }
  std::uint64_t listed = 0;
  for (unsigned fl = 0; fl < kFlCount; ++fl) {
    if (((state.fl_bitmap >> fl) & 1) != (state.sl_bitmap[fl] != 0 ? 1u : 0u)) fail(fmt::format("first-level bit {} is wrong", fl));
    for (unsigned sl = 0; sl < kSlCount; ++sl) {
      const bool bit = (state.sl_bitmap[fl] >> sl) & 1;
      if (bit != (state.heads[fl][sl] != kNone)) fail(fmt::format("second-level bit {}/{} is wrong", fl, sl));
      std::uint32_t prev = kNone;
      for (std::uint32_t b = state.heads[fl][sl]; b != kNone; b = blocks[b].link_next) {
        if (b >= nblocks || blocks[b].state != block_free || blocks[b].link_prev != prev) {
          fail(fmt::format("free list {}/{}: block {} is not a free block linked back to {}", fl, sl, b, prev));
        }
        if (insert_class(blocks[b].size) != SizeClass{fl, sl}) {
          fail(fmt::format("block {} of {} bytes is in free list {}/{}", b, blocks[b].size, fl, sl));
        }
        if (++listed > nblocks) fail("a free list loops");
        prev = b;
      }
    }
  }
  if (listed != free_count) fail(fmt::format("{} free blocks in the segments, {} in the free lists", free_count, listed));
  std::uint64_t quick_listed = 0;
  for (unsigned cls = 0; cls < kQuickClasses; ++cls) {
    std::uint32_t n = 0;
    for (std::uint32_t b = state.quick_heads[cls]; b != kNone; b = blocks[b].link_next) {
      if (b >= nblocks || blocks[b].state != block_quick || blocks[b].size != (cls + 1) * kAlign || ++n > nblocks) {
        fail(fmt::format("size class {}: block {} does not belong", cls, b));
      }
    }
    if (n != state.quick_count[cls]) fail(fmt::format("size class {} counts {} but lists {}", cls, state.quick_count[cls], n));
    quick_listed += n;
  }
  if (quick_listed != quick_total) {
    fail(fmt::format("{} cached blocks in the segments, {} in the size classes", quick_total, quick_listed));
  }
  return census;
}

void check_control(const ControlHeader& h, std::span<const BlockDesc> blocks, std::span<const RefRecord> records,
                   std::string_view who) {
  const Fail fail{who};
  if (h.journal_length != 0) fail(fmt::format("journal holds {} entries outside a transaction", h.journal_length));
  if (h.segment_count > kMaxSegments) fail(fmt::format("{} segments, at most {}", h.segment_count, kMaxSegments));
  if (h.records_hwm > records.size()) fail(fmt::format("{} reference records used of {}", h.records_hwm, records.size()));
  std::vector<SegmentExtent> segments;
  for (std::uint32_t s = 0; s < h.segment_count; ++s) segments.push_back({h.segments[s].first_block, h.segments[s].size});
  const AllocatorCensus census = check_allocator(h.tlsf, blocks, segments, who);
  if (census.bytes_total != h.bytes_total) fail(fmt::format("bytes_total {} but segments hold {}", h.bytes_total, census.bytes_total));
  if (census.bytes_in_use != h.bytes_in_use) {
    fail(fmt::format("bytes_in_use {} but used blocks hold {}", h.bytes_in_use, census.bytes_in_use));
  }
  if (census.used_blocks != h.blocks_in_use) {
    fail(fmt::format("blocks_in_use {} but {} used blocks", h.blocks_in_use, census.used_blocks));
  }
  const std::uint32_t nblocks = h.tlsf.blocks_hwm;
  std::vector<std::uint32_t> refs(nblocks, 0);
  std::uint64_t held = 0, flying = 0, free_records = 0;
  for (std::uint32_t r = 0; r < h.records_hwm; ++r) {
    const RefRecord& rec = records[r];
    if (rec.state == record_free) {
      ++free_records;
      continue;
    }
    if (rec.block >= nblocks || blocks[rec.block].state != block_used) {
      fail(fmt::format("reference {} names block {}, which is not allocated", r, rec.block));
    }
    if (rec.holder >= kMaxProcesses || h.processes[rec.holder].state != slot_live) {
      fail(fmt::format("reference {} belongs to process slot {}, which is free", r, rec.holder));
    }
    ++refs[rec.block];
    (rec.state == record_held ? held : flying) += 1;
  }
  for (std::uint32_t b = 0; b < nblocks; ++b) {
    if (blocks[b].state == block_used && (refs[b] == 0 || refs[b] != blocks[b].refs)) {
      fail(fmt::format("block {} counts {} references, {} records name it", b, blocks[b].refs, refs[b]));
    }
  }
  if (held != h.references || flying != h.in_flight) {
    fail(fmt::format("counters say {} held and {} in flight, records say {} and {}", h.references, h.in_flight, held, flying));
  }
  std::uint64_t free_list = 0;
  for (std::uint32_t r = h.free_record_head; r != kNone; r = records[r].next_free) {
    if (r >= h.records_hwm || records[r].state != record_free || ++free_list > h.records_hwm) {
      fail("the free reference list is broken");
    }
  }
  if (free_list != free_records) fail(fmt::format("{} free references, {} on the free list", free_records, free_list));
}

}  // namespace mpaio::detail
