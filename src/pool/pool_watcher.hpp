#pragma once
// PoolWatcher: the pool owner's background thread that watches every registered process through a pidfd
// and reclaims what a process held the moment it dies, with no help from it and no call from the user.
//
// How it learns of processes: a process that registers in a slot of the control segment sends one
// datagram to the owner's abstract unix socket ("\0mpaio-pool-<pool id>"); the watcher drains the socket,
// rescans the slot table and opens a pidfd for every new slot. A pidfd becomes readable when its process
// exits; the watcher then releases the slot's references (PoolCore::reclaim_slot). If the socket cannot be
// bound (another network namespace, say) the watcher rescans the slots every kRescanMs instead, and so it
// does while a slot could not be looked at (no descriptor left for a pidfd or for /proc: such a process is
// never taken for dead).
//
// fork(): the thread exists only in the process that started it. Fork handlers wait until the watcher is
// between steps (it holds no process-local lock a child could need), and the child closes the watcher's
// descriptors at once, so the fork server and workers inherit no pidfd, epoll or socket of it. The
// constructor returns only once the thread has started and made its first scan: a thread that is still
// starting may hold allocator locks (AddressSanitizer's allocator has no fork handlers), and a fork in that
// window would leave the child waiting on them for ever.

#include <pthread.h>
#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "mpaio/detail/unique_fd.hpp"
#include "pool/control_segment.hpp"

namespace mpaio::detail {

class PoolCore;

class PoolWatcher {
 public:
  /// Rescan period (ms) when the wake-up socket could not be bound, or a slot is to be looked at again.
  static constexpr int kRescanMs = 250;

  /// Whether this kernel has pidfd_open (Linux 5.3): without it there is no watcher.
  static bool supported() noexcept;
  /// Starts the thread for `core` (this process must be its owner). Throws SystemError.
  explicit PoolWatcher(PoolCore& core);
  PoolWatcher(const PoolWatcher&) = delete;
  PoolWatcher& operator=(const PoolWatcher&) = delete;
  /// Stops and joins the thread and closes every descriptor; in a forked child, does nothing more (the
  /// descriptors were closed at the fork and the thread does not exist there).
  ~PoolWatcher();

  /// Whether the thread runs in this process (false in a forked child).
  [[nodiscard]] bool running() const noexcept;

  /// Tells the owner of pool `pool_id` that a process registered (one datagram; never blocks, never
  /// throws; a lost datagram only delays watching until the next wake-up).
  static void notify(std::uint64_t pool_id) noexcept;

 private:
  struct Watched {
    int pidfd = -1;
    std::int32_t pid = 0;
    std::uint64_t start_time = 0;
  };

  static void* thread_main(void* self) noexcept;
  void run() noexcept;
  /// Watches every new slot, reclaims those whose process is certainly gone; false when some slot could
  /// not be decided (EMFILE...) and must be looked at again.
  bool rescan();
  void exited(std::uint32_t slot);
  void forget(std::uint32_t slot) noexcept;
  void close_all() noexcept;  // fork child: no thread, only descriptors

  friend struct PoolWatcherForkHandlers;

  PoolCore& core_;
  pid_t started_in_ = 0;
  UniqueFd epoll_;
  UniqueFd stop_;    // eventfd: the destructor's request
  UniqueFd socket_;  // abstract datagram socket: registrations
  std::array<Watched, pool::kMaxProcesses> watched_{};
  std::mutex step_mutex_;  // held by the thread while it changes watched_ (fork handlers take it)
  std::atomic<bool> started_{false};  // set once the thread is between steps for the first time
  pthread_t thread_{};
  bool running_ = false;
};

}  // namespace mpaio::detail
