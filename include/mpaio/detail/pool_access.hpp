#pragma once
// The non-template part of SharedMemoryPool that PoolArray<T> and SharedMemoryPool's templates call into.
// PoolCore itself lives in src/pool/pool_core.hpp; templates see it only through these functions.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/types.h>

#include "mpaio/dtype.hpp"

namespace mpaio {
struct PoolArrayRef;
struct PoolTransfer;
}  // namespace mpaio

namespace mpaio::detail {

class PoolCore;

/// One reference this process holds on a pool block, and where the block is mapped here.
struct PoolBlock {
  std::uint32_t record = 0;      ///< the reference record (shared) this handle owns
  std::uint32_t block = 0;       ///< block descriptor index
  std::uint32_t generation = 0;  ///< generation of the block when the reference was taken
  std::uint32_t segment = 0;     ///< data segment index
  std::uint64_t offset = 0;      ///< bytes from the segment start to the block
  std::uint64_t size = 0;        ///< usable bytes in the block
  std::byte* data = nullptr;     ///< the block mapped in this process
};

/// Bumped in the child after every fork(): a handle made in another process must not release a reference
/// that belongs to its parent.
extern std::atomic<std::uint64_t> pool_fork_epoch;

PoolBlock pool_allocate(PoolCore& core, std::size_t nbytes);
PoolBlock pool_attach(PoolCore& core, const PoolArrayRef& ref);
void pool_release(PoolCore& core, std::uint32_t record) noexcept;
PoolTransfer pool_send(PoolCore& core, std::uint32_t record, const PoolArrayRef& ref, pid_t receiver);
PoolBlock pool_adopt(PoolCore& core, const PoolTransfer& transfer);
/// Releases a transfer's in-flight reference if it still has one (a result that will never be adopted);
/// never throws.
void pool_discard(PoolCore& core, const PoolTransfer& transfer) noexcept;
std::uint64_t pool_id(const PoolCore& core) noexcept;
/// The name of data segment `segment` (as SharedMemory names it), for ArrayMeta.
const std::string& pool_segment_name(const PoolCore& core, std::uint32_t segment);
/// The pool of this process with id `id`, or nullptr.
PoolCore* find_pool(std::uint64_t id) noexcept;

/// Points in the pool's operations where a test may inject a fault: a SIGKILL inside the locked section, a
/// pause where another process may act.
enum class PoolFaultPoint {
  locked,              ///< right after taking the lock
  block_taken,         ///< a free block left its free list
  block_split,         ///< the remainder of a split block was set up
  reference_taken,     ///< a reference record was filled in
  block_merged,        ///< a freed block absorbed a neighbour
  reference_released,  ///< a reference record was freed
  before_commit,       ///< every change made, the journal not yet cleared
  segment_record_read, ///< outside the lock: a segment's record was read, the segment is not mapped yet
};
/// Test-only hook called at each PoolFaultPoint (nullptr: none). Not for production use.
using PoolFaultHook = void (*)(PoolFaultPoint);
/// Installs the test-only fault hook for this process.
void set_pool_fault_hook(PoolFaultHook hook) noexcept;

}  // namespace mpaio::detail
