#pragma once
// The shared-memory layout of a SharedMemoryPool's control segment, and how it is formatted and
// recognised. Offsets and indices only, never pointers: every process maps the segment at its own
// address. The header holds the lock, the allocator's lists (TlsfState), the process table, the segment
// records, the counters and the undo journal; the block descriptor table and the reference records follow it.

#include <pthread.h>

#include <cstddef>
#include <cstdint>

#include "mpaio/shared_memory_pool.hpp"
#include "pool/tlsf_allocator.hpp"
#include "pool/undo_journal.hpp"

namespace mpaio::detail::pool {

inline constexpr std::uint64_t kMagic = 0x316c6f6f706f6961ULL;  // "aiopool1"
inline constexpr std::uint32_t kVersion = 3;  // 3: an orphan names its sender (gone_sender)
inline constexpr std::uint32_t kMaxSegments = 64;
inline constexpr std::uint32_t kMaxProcesses = 256;
inline constexpr std::uint32_t kJournalCapacity = 1024;

enum RecordState : std::uint32_t { record_free = 0, record_held = 1, record_in_flight = 2 };
enum SlotState : std::uint32_t { slot_free = 0, slot_live = 1 };

/// One reference: held by a process slot, or in flight to a receiver's slot.
struct RefRecord {
  std::uint64_t serial;  // distinguishes successive uses of the record (transfer tokens check it)
  std::uint32_t block;
  std::uint32_t state;   // RecordState
  std::uint32_t holder;  // process slot: the holder (held) or the receiver (in flight)
  std::uint32_t next_free;  // free: the next free record; in flight: the sender's slot, or gone_sender(pid)
};

/// An in-flight record's sender once the sender has left the pool: kGoneSender | its pid (pids are below
/// 2^22, slots below kMaxProcesses). Such a transfer is an orphan; the pid says whose it was.
inline constexpr std::uint32_t kGoneSender = 0x8000'0000u;
constexpr std::uint32_t gone_sender(std::int32_t pid) noexcept { return kGoneSender | static_cast<std::uint32_t>(pid); }
constexpr bool is_orphan(std::uint32_t sender) noexcept { return (sender & kGoneSender) != 0; }

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

/// The control segment's header; the block and record tables follow it.
struct ControlHeader {
  std::uint64_t magic;  // written last by format_control (release), read first by is_formatted (acquire)
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
  TlsfState tlsf;
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

  std::uint32_t journal_length;
  std::uint32_t journal_pad;
  JournalEntry journal[kJournalCapacity];
};

/// Bytes of the control segment of a pool with `options` (header and tables, whole pages).
std::size_t control_size_for(const PoolOptions& options);

/// Formats a fresh (zeroed) control segment of `control_size` bytes: a new pool id, a robust
/// process-shared mutex, empty lists, this process in slot 0 as the owner. `magic` is written last, with
/// release, so that a process attaching meanwhile sees a complete header or none. Throws SystemError.
void format_control(ControlHeader& h, const PoolOptions& options, std::size_t control_size);

/// Whether `h` is a formatted control header of a segment of `control_size` bytes.
bool is_formatted(const ControlHeader& h, std::size_t control_size) noexcept;

}  // namespace mpaio::detail::pool
