#include "pool/control_segment.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cstring>

#include "mpaio/detail/syscall.hpp"
#include "os/process_status.hpp"

namespace mpaio::detail::pool {

std::size_t control_size_for(const PoolOptions& o) {
  const std::size_t blocks = round_up(sizeof(ControlHeader), 64);
  const std::size_t records = round_up(blocks + std::size_t{o.max_blocks} * sizeof(BlockDesc), 64);
  return round_up(records + std::size_t{o.max_references} * sizeof(RefRecord), 4096);
}

void format_control(ControlHeader& h, const PoolOptions& o, std::size_t control_size) {
  // A process may attach while this runs: `magic` is written last (release) and read first (acquire), and
  // nothing else writes it.
  static_assert(offsetof(ControlHeader, magic) == 0);
  std::memset(reinterpret_cast<std::byte*>(&h) + sizeof h.magic, 0, sizeof h - sizeof h.magic);
  h.version = kVersion;
  h.kind = static_cast<std::uint32_t>(o.kind);
  h.max_blocks = o.max_blocks;
  h.max_records = o.max_references;
  h.max_segments = std::min(o.max_segments, kMaxSegments);
  h.segment_size = round_up(std::max<std::uint64_t>(o.segment_size, 4096), 4096);
  h.blocks_offset = round_up(sizeof(ControlHeader), 64);
  h.records_offset = round_up(h.blocks_offset + std::size_t{o.max_blocks} * sizeof(BlockDesc), 64);
  h.control_size = control_size;
  h.owner_slot = 0;
  TlsfAllocator::format(h.tlsf);
  h.free_record_head = kNone;
  h.next_serial = 1;
  for (;;) {
    std::uint64_t id = 0;
    if (::getrandom(&id, sizeof id, 0) == sizeof id && id != 0) {
      h.pool_id = id;
      break;
    }
  }
  pthread_mutexattr_t attr;
  ::pthread_mutexattr_init(&attr);
  ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  sys_errno_result("pthread_mutex_init", [&] { return ::pthread_mutex_init(&h.mutex, &attr); }, "attr",
                   "process-shared, robust");
  ::pthread_mutexattr_destroy(&attr);
  // The owner takes slot 0.
  h.processes[0].pid = ::getpid();
  h.processes[0].start_time = own_start_time("SharedMemoryPool::create");
  h.processes[0].state = slot_live;
  h.process_count = 1;
  __atomic_store_n(&h.magic, kMagic, __ATOMIC_RELEASE);
}

bool is_formatted(const ControlHeader& h, std::size_t control_size) noexcept {
  return __atomic_load_n(&h.magic, __ATOMIC_ACQUIRE) == kMagic && h.version == kVersion &&
         h.control_size == control_size;
}

}  // namespace mpaio::detail::pool
