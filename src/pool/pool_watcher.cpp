#include "pool/pool_watcher.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <vector>

#include "mpaio/detail/syscall.hpp"
#include "os/process_status.hpp"
#include "pool/pool_core.hpp"

namespace mpaio::detail {

using namespace pool;

namespace {

constexpr std::uint64_t kStopTag = std::uint64_t{1} << 32;
constexpr std::uint64_t kSocketTag = (std::uint64_t{1} << 32) + 1;

/// The abstract socket address of pool `pool_id`'s watcher; `length` receives the address length.
sockaddr_un address_of(std::uint64_t pool_id, socklen_t& length) noexcept {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // sun_path[0] stays '\0': the abstract namespace (no file, gone with the last descriptor).
  const int n = std::snprintf(address.sun_path + 1, sizeof address.sun_path - 1, "mpaio-pool-%016llx",
                              static_cast<unsigned long long>(pool_id));
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + static_cast<std::size_t>(n));
  return address;
}

}  // namespace

/// The watchers of this process, for the fork handlers.
struct PoolWatcherForkHandlers {
  std::mutex mutex;
  std::vector<PoolWatcher*> watchers;

  static PoolWatcherForkHandlers& instance() {
    static auto* handlers = [] {
      auto* h = new PoolWatcherForkHandlers;  // never destroyed: a fork may come during static destruction
      ::pthread_atfork(&prepare, &parent, &child);
      return h;
    }();
    return *handlers;
  }
  // Before fork(): wait until every watcher is between steps, so that the child sees a consistent table.
  static void prepare() noexcept {
    auto& h = instance();
    h.mutex.lock();
    for (PoolWatcher* w : h.watchers) w->step_mutex_.lock();
  }
  static void parent() noexcept {
    auto& h = instance();
    for (PoolWatcher* w : h.watchers) w->step_mutex_.unlock();
    h.mutex.unlock();
  }
  // In the child the threads are gone: close what they used.
  static void child() noexcept {
    auto& h = instance();
    for (PoolWatcher* w : h.watchers) {
      w->close_all();
      w->step_mutex_.unlock();
    }
    h.mutex.unlock();
  }
};

bool PoolWatcher::supported() noexcept { return pidfd_supported(); }

PoolWatcher::PoolWatcher(PoolCore& core) : core_(core), started_in_(::getpid()) {
  epoll_ = UniqueFd(sys("epoll_create1", [] { return ::epoll_create1(EPOLL_CLOEXEC); }));
  stop_ = UniqueFd(sys("eventfd", [] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }));
  auto add = [&](int fd, std::uint64_t tag) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = tag;
    sys("epoll_ctl", [&] { return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event); }, "op", "ADD", "fd", fd);
  };
  add(stop_.get(), kStopTag);
  UniqueFd socket(sys("socket", [] { return ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0); }));
  socklen_t length = 0;
  const sockaddr_un address = address_of(core_.id(), length);
  if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&address), length) == 0) {
    add(socket.get(), kSocketTag);
    socket_ = std::move(socket);
  }  // else: no wake-ups, the thread rescans every kRescanMs
  auto& handlers = PoolWatcherForkHandlers::instance();
  {
    std::lock_guard lock(handlers.mutex);
    handlers.watchers.push_back(this);
  }
  // The thread takes no signal (a test's SIGALRM, the program's SIGINT and SIGCHLD stay with its threads).
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const int rc = ::pthread_create(&thread_, nullptr, &PoolWatcher::thread_main, this);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (rc != 0) {
    {
      std::lock_guard lock(handlers.mutex);
      std::erase(handlers.watchers, this);
    }
    throw SystemError("pthread_create(pool watcher)", rc);
  }
  running_ = true;
  started_.wait(false);
}

PoolWatcher::~PoolWatcher() {
  if (running_ && started_in_ == ::getpid()) {
    const std::uint64_t one = 1;
    while (::write(stop_.get(), &one, sizeof one) < 0 && errno == EINTR) {
    }
    ::pthread_join(thread_, nullptr);
  }
  auto& handlers = PoolWatcherForkHandlers::instance();
  {
    std::lock_guard lock(handlers.mutex);
    std::erase(handlers.watchers, this);
  }
  for (Watched& w : watched_) {
    if (w.pidfd >= 0) ::close(w.pidfd);
    w.pidfd = -1;
  }
}

bool PoolWatcher::running() const noexcept { return running_ && started_in_ == ::getpid(); }

void PoolWatcher::close_all() noexcept {
  running_ = false;
  for (Watched& w : watched_) {
    if (w.pidfd >= 0) ::close(w.pidfd);
    w.pidfd = -1;
  }
  epoll_.reset();
  stop_.reset();
  socket_.reset();
}

void PoolWatcher::notify(std::uint64_t pool_id) noexcept {
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  socklen_t length = 0;
  const sockaddr_un address = address_of(pool_id, length);
  const char byte = 1;
  // EAGAIN: wake-ups are pending anyway; ECONNREFUSED: no watcher (none started, or the owner is gone).
  (void)::sendto(fd, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address), length);
  ::close(fd);
}

void* PoolWatcher::thread_main(void* self) noexcept {
  static_cast<PoolWatcher*>(self)->run();
  return nullptr;
}

void PoolWatcher::run() noexcept {
  // Whether a slot is left to look at again (see rescan()): then the thread rescans after kRescanMs even
  // with no wake-up.
  bool retry = true;
  auto rescan_now = [&] {
    try {
      retry = !rescan();
    } catch (...) {
      retry = true;
    }
  };
  {
    std::lock_guard step(step_mutex_);
    rescan_now();
  }
  started_.store(true);
  started_.notify_one();
  epoll_event events[32];
  for (;;) {
    const int timeout = socket_ && !retry ? -1 : kRescanMs;
    const int n = ::epoll_wait(epoll_.get(), events, 32, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // cannot happen with a valid epoll fd; reclaim_dead() remains
    }
    std::lock_guard step(step_mutex_);
    bool rescan_needed = n == 0;
    for (int i = 0; i < n; ++i) {
      const std::uint64_t tag = events[i].data.u64;
      if (tag == kStopTag) return;
      if (tag == kSocketTag) {
        char buffer[64];
        while (::recv(socket_.get(), buffer, sizeof buffer, MSG_DONTWAIT) >= 0) {
        }
        rescan_needed = true;
      } else if (tag < kMaxProcesses) {
        exited(static_cast<std::uint32_t>(tag));
      }
    }
    if (rescan_needed) rescan_now();
  }
}

bool PoolWatcher::rescan() {
  const PoolCore::Slots slots = core_.process_slots();
  bool complete = true;
  for (std::uint32_t i = 0; i < kMaxProcesses; ++i) {
    const ProcessSlot& s = slots.slots[i];
    Watched& w = watched_[i];
    const bool live = i != slots.owner && s.state == slot_live;
    if (w.pidfd >= 0 && (!live || w.pid != s.pid || w.start_time != s.start_time)) forget(i);  // left, reused
    if (!live || w.pidfd >= 0) continue;
    CheckedPidfd pidfd = open_checked_pidfd(s.pid, s.start_time);
    if (pidfd.state == CheckedPidfd::State::gone) {
      core_.reclaim_slot(i, s.pid, s.start_time);
      continue;
    }
    if (pidfd.state == CheckedPidfd::State::undecided) {
      complete = false;  // EMFILE and the like: it may well be alive, look again later
      continue;
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = i;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, pidfd.fd.get(), &event) != 0) {
      complete = false;
      continue;
    }
    w = Watched{pidfd.fd.release(), s.pid, s.start_time};
  }
  return complete;
}

void PoolWatcher::exited(std::uint32_t slot) {
  const Watched w = watched_[slot];
  if (w.pidfd < 0) return;
  try {
    core_.reclaim_slot(slot, w.pid, w.start_time);
  } catch (...) {
    // PoolCorrupted and the like: reclaim_dead() (before growth, or the user's call) tries again.
  }
  forget(slot);  // in any case: a slot that cannot be reclaimed must not wake the thread forever
}

void PoolWatcher::forget(std::uint32_t slot) noexcept {
  Watched& w = watched_[slot];
  if (w.pidfd < 0) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, w.pidfd, nullptr);
  ::close(w.pidfd);
  w = Watched{};
}

}  // namespace mpaio::detail
