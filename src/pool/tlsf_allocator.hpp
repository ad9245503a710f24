#pragma once
// TlsfAllocator: a SharedMemoryPool's block allocator over a table of block descriptors and a TlsfState,
// both in shared memory: TLSF (two-level segregated fit: O(1) allocation and free, immediate coalescing)
// with size classes in front of it for small blocks. It hands out offsets in segments (it never touches
// their bytes), writes every change through an UndoJournal, and knows nothing of processes or locks: its
// user holds the lock and commits.
//
// Sizes: blocks are multiples of kAlign (64) bytes, at most kMaxBlockSize. A free block of size s sits in
// list (fl, sl) = insert_class(s); a request looks from search_class(size) up, a list whose every block is
// large enough, so that the first block found fits. Freed blocks of 64 B .. 4 KiB are kept per exact size
// (up to kQuickLimit each) and handed out again without splitting or merging.

#include <bit>
#include <cstdint>
#include <span>

#include "mpaio/pool_array.hpp"
#include "pool/undo_journal.hpp"

namespace mpaio::detail::pool {

inline constexpr std::uint32_t kNone = 0xffffffffu;

// Blocks are multiples of 64 bytes and start 64-byte aligned.
inline constexpr unsigned kAlignLog2 = 6;
inline constexpr std::uint64_t kAlign = std::uint64_t{1} << kAlignLog2;
// TLSF: 16 second-level lists per power of two; sizes below 1 KiB map linearly to first level 0.
inline constexpr unsigned kSlLog2 = 4;
inline constexpr unsigned kSlCount = 1u << kSlLog2;
inline constexpr unsigned kFlShift = kSlLog2 + kAlignLog2;
inline constexpr unsigned kFlCount = 40;
// Size classes: freed blocks of 64 B .. 4 KiB are cached per exact size, up to kQuickLimit each.
inline constexpr std::uint64_t kQuickMax = 4096;
inline constexpr unsigned kQuickClasses = kQuickMax / kAlign;
inline constexpr std::uint32_t kQuickLimit = 256;

enum BlockState : std::uint32_t { block_unused = 0, block_free = 1, block_used = 2, block_quick = 3 };

/// A block of a data segment: allocated, free (in TLSF or a size class) or an unused descriptor.
struct BlockDesc {
  std::uint64_t offset;      // bytes from the segment start
  std::uint64_t size;        // bytes, a multiple of kAlign
  std::uint32_t segment;
  std::uint32_t state;       // BlockState
  std::uint32_t generation;  // moves on whenever the block is freed or its descriptor retired
  std::uint32_t refs;        // reference records naming it (the pool's; the allocator zeroes it on split)
  std::uint32_t phys_prev;   // neighbours in the segment (kNone at the ends)
  std::uint32_t phys_next;
  std::uint32_t link_prev;   // free list (TLSF, size class or unused descriptors)
  std::uint32_t link_next;
};

/// The allocator's lists, in shared memory beside the descriptor table.
struct TlsfState {
  std::uint64_t fl_bitmap;
  std::uint32_t sl_bitmap[kFlCount];
  std::uint32_t heads[kFlCount][kSlCount];
  std::uint32_t quick_heads[kQuickClasses];
  std::uint32_t quick_count[kQuickClasses];
  std::uint32_t unused_head;  // recycled descriptors
  std::uint32_t blocks_hwm;   // descriptors never used start here
};

/// A TLSF list: first level (power of two) and second level (1/16 of it).
struct SizeClass {
  unsigned fl;
  unsigned sl;
  friend bool operator==(SizeClass, SizeClass) = default;
};

constexpr unsigned log2_floor(std::uint64_t v) noexcept { return 63u - static_cast<unsigned>(std::countl_zero(v)); }

/// The list a free block of `size` bytes is kept in.
constexpr SizeClass insert_class(std::uint64_t size) noexcept {
  if (size < (std::uint64_t{1} << kFlShift)) return {0, static_cast<unsigned>(size >> kAlignLog2)};
  const unsigned f = log2_floor(size);
  return {f - kFlShift + 1, static_cast<unsigned>(size >> (f - kSlLog2)) ^ kSlCount};
}

/// The first list whose every block holds `size` bytes: `size` rounded up to the next second-level class.
constexpr SizeClass search_class(std::uint64_t size) noexcept {
  if (size >= (std::uint64_t{1} << kFlShift)) size += (std::uint64_t{1} << (log2_floor(size) - kSlLog2)) - 1;
  return insert_class(size);
}

constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t to) noexcept { return (v + to - 1) / to * to; }

/// The smallest segment in which a request of `size` bytes is found: search_class looks from the class
/// above `size` up, so the segment must reach that class's lower bound (size rounded up to 1/16 of its
/// power of two), then a whole page. At most kMaxBlockSize for a size of at most kMaxBlockSize.
constexpr std::uint64_t segment_bytes_for(std::uint64_t size) noexcept {
  if (size >= (std::uint64_t{1} << kFlShift)) size = round_up(size, std::uint64_t{1} << (log2_floor(size) - kSlLog2));
  return round_up(size, 4096);
}

/// The largest block: a request of this size is looked up in the last list, and its segment stays there.
inline constexpr std::uint64_t kMaxBlockSize = kPoolMaxArrayBytes;
static_assert(kMaxBlockSize % 4096 == 0 && search_class(kMaxBlockSize) == SizeClass{kFlCount - 1, kSlCount - 1} &&
              segment_bytes_for(kMaxBlockSize) == kMaxBlockSize && search_class(kMaxBlockSize + kAlign).fl == kFlCount);

}  // namespace mpaio::detail::pool

namespace mpaio::detail {

class TlsfAllocator {
 public:
  /// An allocator over `state` and the descriptor table `blocks`, changing them through `journal` (whose
  /// region must hold both). Nothing is written.
  TlsfAllocator(pool::TlsfState& state, std::span<pool::BlockDesc> blocks, UndoJournal& journal) noexcept
      : state_(state), blocks_(blocks), journal_(journal) {}

  /// Sets up a fresh state (no block, every list empty). Not journaled: for a state nobody uses yet.
  static void format(pool::TlsfState& state) noexcept;

  /// Makes bytes [0, size) of segment `segment` one free block (size: a multiple of kAlign, at most
  /// kMaxBlockSize); returns its descriptor, or kNone when the descriptor table is full.
  std::uint32_t add_segment(std::uint32_t segment, std::uint64_t size);
  /// A used block of at least `size` bytes (a multiple of kAlign, at most kMaxBlockSize), split off a larger
  /// free block when a descriptor is left for the rest; kNone when no free block is large enough.
  std::uint32_t take(std::uint64_t size);
  /// Frees used block `b`: its generation moves on, and it goes to its size class, or back to TLSF merged
  /// with its free neighbours.
  void give_back(std::uint32_t b);
  /// Moves one cached block of the size classes back into TLSF (merged); false when none is left. One per
  /// call, so that a caller can commit between them and keep each transaction small.
  bool flush_one();

  [[nodiscard]] const pool::TlsfState& state() const noexcept { return state_; }
  [[nodiscard]] std::span<const pool::BlockDesc> blocks() const noexcept { return blocks_; }

 private:
  template <class T>
  void set(T& field, T value) noexcept {
    journal_.set(field, value);
  }
  void tlsf_free(std::uint32_t b);
  /// Free block `left` grows over its physical neighbour `right`, whose descriptor is retired.
  void absorb(std::uint32_t left, std::uint32_t right);
  void insert_free(std::uint32_t b);
  void remove_free(std::uint32_t b);
  std::uint32_t new_desc();
  void retire_desc(std::uint32_t d);

  pool::TlsfState& state_;
  std::span<pool::BlockDesc> blocks_;
  UndoJournal& journal_;
};

}  // namespace mpaio::detail
