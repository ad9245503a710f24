#pragma once
/// @file shared_memory_pool.hpp
/// SharedMemoryPool: many arrays in a few big shared segments, allocated without a system call,
/// reference-counted across processes and reclaimed when a process dies.

#include <array>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "mpaio/pool_array.hpp"
#include "mpaio/shared_memory.hpp"

namespace mpaio {

/// Options for SharedMemoryPool::create.
struct PoolOptions {
  /// anonymous (memfd, default: cannot leak) or named (/dev/shm: numpy and other programs attach by name).
  SegmentKind kind = SegmentKind::anonymous;
  /// Bytes of each data segment added on demand. A larger request gets a segment of its own: its size
  /// rounded up to the allocator's size class (at most 1/16 more), then to a page. At most
  /// kPoolMaxArrayBytes (create() throws InvalidArgument beyond).
  std::size_t segment_size = std::size_t{64} << 20;
  /// Most data segments the pool may add (at most 64); allocation fails with PoolExhausted beyond.
  std::uint32_t max_segments = 64;
  /// Capacity of the block table (arrays and free fragments together).
  std::uint32_t max_blocks = 1u << 18;
  /// Capacity of the reference table (handles in all processes plus transfers in flight).
  std::uint32_t max_references = 1u << 19;
  /// Reclaim dead processes in the background (default): the owner runs one watcher thread that holds a
  /// pidfd for every process registered with the pool and, as soon as one exits (killed or not), releases
  /// everything it held or had in flight to it. false, or a kernel without pidfd_open (Linux < 5.3): no
  /// thread; reclaim_dead(), called automatically before the pool grows, is then the only reclamation.
  bool watch_processes = true;
};

/// Counters of a pool, read under its lock.
struct PoolStats {
  std::uint64_t bytes_total = 0;      ///< bytes of all data segments
  std::uint64_t bytes_in_use = 0;     ///< bytes of allocated blocks (rounded up to 64)
  std::uint64_t blocks_in_use = 0;    ///< allocated blocks
  std::uint64_t references = 0;       ///< references held by processes
  std::uint64_t in_flight = 0;        ///< references carried by transfers not yet adopted
  std::uint32_t segments = 0;         ///< data segments
  std::uint32_t processes = 0;        ///< processes registered with the pool
  std::uint64_t recoveries = 0;       ///< times a locker found the lock's owner dead and repaired the state
  std::uint64_t reclaimed_references = 0;  ///< references released on behalf of dead processes
};

/// Many typed arrays carved out of a few big shared-memory segments.
///
/// Allocation takes a robust process-shared mutex and no system call in the common case (size classes for
/// arrays up to 4 KiB, TLSF for larger ones; blocks are 64-byte aligned; bookkeeping lives in a separate
/// control segment, never among the data). Segments are added on demand and never remapped. Every
/// reference (a PoolArray in some process, or a PoolTransfer in flight) is a record in shared memory
/// naming its holder, so a block is freed by whichever process drops the last reference, and what a dead
/// process held is released without its help. A process killed inside the locked section leaves a journal
/// that the next locker rolls back.
///
/// Dead processes: every process registers in a slot of the control segment on its first pool operation
/// and wakes the owner (one datagram to an abstract unix socket named after the pool id). The owner's
/// watcher thread (PoolOptions::watch_processes, on by default) opens a pidfd for each registered process
/// and, when one becomes readable, releases that process's references at once: nobody calls anything.
/// The thread blocks every signal, holds no process-local lock across fork() (fork handlers wait until it
/// is between steps) and its descriptors are closed in forked children; the destructor stops and joins
/// it. Without it (option off, or no pidfd_open) reclaim_dead() finds dead processes by /proc pid + start
/// time, automatically before the pool grows.
///
/// Reaching worker processes: create the pool *before* the ProcessPoolExecutor, so that workers inherit
/// it (its mappings and this object), or use a named pool and attach by name. Data segments added later
/// are mapped on first use (anonymous ones through /proc/<pid>/fd of the process that holds them). Pool
/// arrays can be given to the orchestrator like SharedArrays (through meta()).
///
/// Thread safety: every member may be called from any thread of any process, and any thread may fork()
/// meanwhile: fork handlers hold the pool's process-local locks across it, so the child finds them free.
class SharedMemoryPool {
 public:
  /// Creates a pool (the control segment now, data segments on demand); this process is its owner.
  static SharedMemoryPool create(PoolOptions options = {});
  /// Attaches the named pool whose control segment is `name` (see name()). Throws SystemError when it does
  /// not exist, InvalidArgument when it is no pool.
  static SharedMemoryPool attach(std::string_view name);

  SharedMemoryPool(SharedMemoryPool&&) noexcept;
  SharedMemoryPool& operator=(SharedMemoryPool&&) noexcept;
  SharedMemoryPool(const SharedMemoryPool&) = delete;
  SharedMemoryPool& operator=(const SharedMemoryPool&) = delete;
  /// The owner's destructor removes the pool (names unlinked, memfds closed); processes that still map it
  /// keep valid memory. Arrays of this pool must be gone first.
  ~SharedMemoryPool();

  /// Allocates an array of the given shape (contents unspecified). Throws InvalidArgument for an empty shape
  /// or one whose byte size overflows or exceeds kPoolMaxArrayBytes (the message names the size),
  /// PoolExhausted when no segment may be added.
  template <Element T>
  PoolArray<T> allocate(std::span<const std::size_t> shape) {
    std::array<std::uint64_t, kPoolMaxDims> extents{};
    const std::size_t bytes = checked_bytes(shape, sizeof(T), extents);
    const detail::PoolBlock block = detail::pool_allocate(*core_, bytes);
    return PoolArray<T>(*core_, block, std::span<const std::uint64_t>(extents.data(), shape.size()), 0);
  }
  /// allocate() for a braced shape: `pool.allocate<float>({64, 64})`.
  template <Element T>
  PoolArray<T> allocate(std::initializer_list<std::size_t> shape) {
    return allocate<T>(std::span<const std::size_t>(shape.begin(), shape.size()));
  }
  /// Allocates a zero-filled array.
  template <Element T>
  PoolArray<T> zeros(std::initializer_list<std::size_t> shape) {
    PoolArray<T> array = allocate<T>(shape);
    std::memset(static_cast<void*>(array.data()), 0, array.nbytes());
    return array;
  }
  /// Takes a new reference to the array `ref` names (any process of the pool). Throws StalePoolReference
  /// when the block was freed since, InvalidArgument when the dtype is not T's or the reference is malformed
  /// (ndim above kPoolMaxDims, a shape whose size overflows, elements past the block: the message names the
  /// field), SystemError when the block's segment cannot be mapped here (no reference is then taken).
  template <Element T>
  PoolArray<T> attach(const PoolArrayRef& ref) {
    if (ref.dtype != dtype_of<T>()) throw InvalidArgument("SharedMemoryPool::attach: the array holds " + ref.dtype.typestr());
    const detail::PoolBlock block = detail::pool_attach(*core_, ref);
    return PoolArray<T>(*core_, block, std::span<const std::uint64_t>(ref.shape.data(), ref.ndim), ref.offset);
  }
  /// Takes an in-flight reference for `array`, addressed to `receiver` (0: the pool's owner). The block
  /// lives until the token is adopted or dropped, or the receiver dies. Sending twice makes two tokens.
  template <Element T>
  PoolTransfer send(const PoolArray<T>& array, pid_t receiver = 0) {
    if (!array) throw InvalidArgument("SharedMemoryPool::send: empty PoolArray");
    return detail::pool_send(*core_, array.block_.record, array.ref(), receiver);
  }
  /// Turns a transfer token into a handle of this process (once). Throws StalePoolReference when the token
  /// was already adopted or dropped, InvalidArgument when the dtype is not T's or the array is malformed (as
  /// attach), SystemError when its segment cannot be mapped here; after InvalidArgument or SystemError the
  /// token is still good.
  template <Element T>
  PoolArray<T> adopt(const PoolTransfer& transfer) {
    if (transfer.array.dtype != dtype_of<T>()) {
      throw InvalidArgument("SharedMemoryPool::adopt: the array holds " + transfer.array.dtype.typestr());
    }
    const detail::PoolBlock block = detail::pool_adopt(*core_, transfer);
    return PoolArray<T>(*core_, block, std::span<const std::uint64_t>(transfer.array.shape.data(), transfer.array.ndim),
                        transfer.array.offset);
  }
  /// Releases a transfer token's reference without adopting it. Throws StalePoolReference if already done.
  void drop(const PoolTransfer& transfer);

  /// Releases every reference held by, or in flight to, a registered process that no longer exists
  /// (checked by pid and start time, so a reused pid is not mistaken for it; a process whose /proc entry
  /// cannot be read now, for want of a descriptor say, is left for a later call); returns how many. Called
  /// automatically before the pool grows. With the watcher running (watching()) the owner needs it only to
  /// be sure at a given point (the watcher may have released everything already: it then returns 0).
  std::size_t reclaim_dead();
  /// Releases the transfers still in flight whose sender died or left the pool (orphans): call it when
  /// no message from a dead process can arrive any more. Returns how many. A ProcessPoolExecutor releases
  /// those of a worker whose result ring it found malformed itself, once the worker is gone.
  std::size_t release_orphaned_transfers();
  /// Checks the shared bookkeeping (block chains, free lists, bitmaps, reference counts, counters);
  /// throws PoolCorrupted describing the first violation.
  void check_invariants() const;
  /// The counters.
  [[nodiscard]] PoolStats stats() const;
  /// The control segment's name: pass it to attach() (named pools).
  [[nodiscard]] const std::string& name() const noexcept;
  /// The pool's random 64-bit id (PoolArrayRef::pool_id).
  [[nodiscard]] std::uint64_t id() const noexcept;
  /// The owner's pid.
  [[nodiscard]] pid_t owner() const noexcept;
  /// Whether this process runs the pool's watcher thread (the owner, with PoolOptions::watch_processes and
  /// a kernel that has pidfd_open).
  [[nodiscard]] bool watching() const noexcept;
  /// The pool with id `id` that this process holds (created, attached or inherited), or nullptr.
  static SharedMemoryPool* find(std::uint64_t id) noexcept;

 private:
  explicit SharedMemoryPool(std::unique_ptr<detail::PoolCore> core);
  static std::size_t checked_bytes(std::span<const std::size_t> shape, std::size_t itemsize,
                                   std::array<std::uint64_t, kPoolMaxDims>& extents);

  std::unique_ptr<detail::PoolCore> core_;
};

}  // namespace mpaio
