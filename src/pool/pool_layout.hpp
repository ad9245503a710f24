#pragma once
// The shared-memory layout of a SharedMemoryPool's control segment. Offsets and indices only, never
// pointers: every process maps the segment at its own address.

#include <pthread.h>

#include <cstdint>

namespace mpaio::detail::pool {

inline constexpr std::uint64_t kMagic = 0x316c6f6f706f6961ULL;  // "aiopool1"
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kNone = 0xffffffffu;
inline constexpr std::uint32_t kMaxSegments = 64;
inline constexpr std::uint32_t kMaxProcesses = 256;
inline constexpr std::uint32_t kJournalCapacity = 1024;

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
enum RecordState : std::uint32_t { record_free = 0, record_held = 1, record_in_flight = 2 };
enum SlotState : std::uint32_t { slot_free = 0, slot_live = 1 };

/// A block of a data segment: allocated, free (in TLSF or a size-class list) or an unused descriptor.
struct BlockDesc {
  std::uint64_t offset;      // bytes from the segment start
  std::uint64_t size;        // bytes, a multiple of kAlign
  std::uint32_t segment;
  std::uint32_t state;       // BlockState
  std::uint32_t generation;  // bumped whenever the block is freed
  std::uint32_t refs;        // reference records naming it
  std::uint32_t phys_prev;   // neighbours in the segment (kNone at the ends)
  std::uint32_t phys_next;
  std::uint32_t link_prev;   // free list (TLSF, size class or unused descriptors)
  std::uint32_t link_next;
};

/// One reference: held by a process slot, or in flight to a receiver's slot.
struct RefRecord {
  std::uint64_t serial;  // distinguishes successive uses of the record (transfer tokens check it)
  std::uint32_t block;
  std::uint32_t state;   // RecordState
  std::uint32_t holder;  // process slot: the holder (held) or the receiver (in flight)
  std::uint32_t next_free;  // free: the next free record; in flight: the sender's slot (kNone: orphan)
};

/// A process that uses the pool; pid and start time identify it even after its pid is reused.
struct ProcessSlot {
  std::uint64_t start_time;
  std::int32_t pid;
  std::uint32_t state;  // SlotState
};

/// A data segment: how other processes reach it.
struct SegmentRecord {
  char name[96];             // SharedMemory name ("memfd:mpaio-..." or "/mpaio-...")
  std::uint64_t size;
  std::int32_t holder_pid;   // anonymous: a process holding the memfd open ...
  std::int32_t holder_fd;    // ... and the descriptor number there (/proc/<pid>/fd/<fd>)
  std::uint32_t first_block; // the block at offset 0
  std::uint32_t kind;        // SegmentKind
};

/// One undo entry: where (byte offset in the control segment, shifted left 4) | size, and the old value.
struct JournalEntry {
  std::uint64_t where;
  std::uint64_t old;
};

/// The control segment's header; the block and record tables follow it.
struct Header {
  std::uint64_t magic;
  std::uint64_t pool_id;
  std::uint32_t version;
  std::uint32_t kind;
  std::uint32_t max_blocks;
  std::uint32_t max_records;
  std::uint32_t max_segments;
  std::uint32_t owner_slot;
  std::uint64_t segment_size;
  std::uint64_t blocks_offset;
  std::uint64_t records_offset;
  std::uint64_t control_size;
  pthread_mutex_t mutex;

  // Everything below is changed only under the mutex, through the journal.
  std::uint64_t fl_bitmap;
  std::uint32_t sl_bitmap[kFlCount];
  std::uint32_t heads[kFlCount][kSlCount];
  std::uint32_t quick_heads[kQuickClasses];
  std::uint32_t quick_count[kQuickClasses];
  std::uint32_t unused_head;      // recycled descriptors
  std::uint32_t blocks_hwm;       // descriptors never used start here
  std::uint32_t free_record_head;
  std::uint32_t records_hwm;
  std::uint32_t segment_count;
  std::uint32_t process_count;
  std::uint64_t next_serial;
  std::uint64_t bytes_total;
  std::uint64_t bytes_in_use;
  std::uint64_t blocks_in_use;
  std::uint64_t references;
  std::uint64_t in_flight;
  std::uint64_t recoveries;
  std::uint64_t reclaimed;
  ProcessSlot processes[kMaxProcesses];
  SegmentRecord segments[kMaxSegments];

  std::uint32_t journal_len;
  std::uint32_t journal_pad;
  JournalEntry journal[kJournalCapacity];
};

}  // namespace mpaio::detail::pool
