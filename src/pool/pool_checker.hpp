#pragma once
// The invariant checker of a SharedMemoryPool's shared bookkeeping: the allocator's block chains, free
// lists, bitmaps and size classes, then the counters, reference records and process slots. It reads only,
// over plain memory: the pool runs it under its lock, tests over a buffer.

#include <cstdint>
#include <span>
#include <string_view>

#include "pool/control_segment.hpp"
#include "pool/tlsf_allocator.hpp"

namespace mpaio::detail {

/// One data segment as the allocator sees it: the block at offset 0, and the segment's size.
struct SegmentExtent {
  std::uint32_t first_block;
  std::uint64_t size;
};

/// What check_allocator counted.
struct AllocatorCensus {
  std::uint64_t bytes_total = 0;   ///< bytes of all segments
  std::uint64_t bytes_in_use = 0;  ///< bytes of used blocks
  std::uint64_t used_blocks = 0;
};

/// Checks that every segment's chain of blocks covers it exactly (offsets, sizes, back links, no two free
/// blocks side by side), that the TLSF lists hold exactly the free blocks, each in the list its size maps
/// to, with bitmaps that say which lists are not empty, and that the size classes hold cached blocks of
/// their size, as many as they count. Throws PoolCorrupted "<who>: <the first violation>".
AllocatorCensus check_allocator(const pool::TlsfState& state, std::span<const pool::BlockDesc> blocks,
                                std::span<const SegmentExtent> segments, std::string_view who);

/// Checks a whole control segment: the journal is empty, the allocator (check_allocator), the counters
/// against what the blocks and records hold, every reference against its block and its process slot, and
/// the free reference list. Throws PoolCorrupted "<who>: <the first violation>".
void check_control(const pool::ControlHeader& h, std::span<const pool::BlockDesc> blocks,
                   std::span<const pool::RefRecord> records, std::string_view who);

}  // namespace mpaio::detail
