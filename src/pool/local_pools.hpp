#pragma once
// The SharedMemoryPools of this process, by id (a PoolArray decoded from a message names its pool by id),
// and what keeps their process-local locks usable across fork(): the handlers installed with the first pool
// hold the list's lock and every pool's local locks while fork() runs, so that a child never inherits a
// lock that another thread of its parent held (it would wait on it for ever), and bump pool_fork_epoch in
// the child.
//
// Lock order: the list's lock, then a pool's registration mutex, then its local mutex. The local mutex is
// taken last and alone (no system call, no other lock under it), so the handlers never wait long.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace mpaio::detail {

class PoolCore;

/// Lists `core` (by its pool id: of two cores of one pool, the later is found).
void add_local_pool(PoolCore& core);
/// Unlists `core`; after it returns no fork handler touches it.
void remove_local_pool(PoolCore& core) noexcept;

/// In every pool of this process, releases the transfers that `sender`, a process known to be gone, sent
/// here and that were never adopted (PoolCore::release_transfers_from); returns how many.
std::size_t release_transfers_from(pid_t sender) noexcept;

/// The fork handlers (friends of PoolCore, for its locks).
struct LocalPoolsFork {
  static void prepare() noexcept;
  static void parent() noexcept;
  static void child() noexcept;
};

}  // namespace mpaio::detail
