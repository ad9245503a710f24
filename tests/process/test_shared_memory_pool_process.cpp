// SharedMemoryPool across processes: arrays allocated in one process and freed in another, transfers,
// SIGKILL of a process holding blocks, SIGKILL inside the locked section at every injected point, arrays
// returned by ProcessPoolExecutor workers (10^5 of them, dropped at once), the same array sent twice, and
// segments added after a fork; the owner's pidfd watcher reclaiming a SIGKILLed process by itself, and
// leaving no descriptor or thread behind; a process that cannot read /proc (no descriptor left) taking no
// live process for dead; a segment that cannot be mapped leaving no reference behind; a normal detach
// leaving the state a reclaim would; no segment leaked by a failed growth or removed by
// remove_stale_segments() under a live pool; pool arrays and row slices read by other processes and by
// the orchestrator exactly like SharedArrays. Every test runs under a Watchdog, every fork under a deadline.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../../examples/seed_workers.hpp"
#include "mpaio/mpaio.hpp"
#include "pool/control_segment.hpp"
#include "support/child_process.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::PoolArray;
using mpaio::PoolTransfer;
using mpaio::SharedMemoryPool;
using mpaio::detail::PoolFaultPoint;

mpaio::PoolOptions test_pool() {
  return {.segment_size = std::size_t{4} << 20, .max_segments = 16, .max_blocks = 1u << 18, .max_references = 1u << 18};
}

/// test_pool() without the watcher thread: dead processes are found only by reclaim_dead().
mpaio::PoolOptions unwatched_pool() {
  mpaio::PoolOptions options = test_pool();
  options.watch_processes = false;
  return options;
}

/// Polls `done` every millisecond until it holds or `limit` passes; returns how long it took, or -1 ms.
std::chrono::milliseconds wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  while (!done()) {
    if (std::chrono::steady_clock::now() - start > limit) return std::chrono::milliseconds(-1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

/// How many of this process's descriptors point at `target` ("anon_inode:[pidfd]", "socket:", ...: a prefix).
int count_fds(const std::string& target) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto link = std::filesystem::read_symlink(entry.path(), ec);
    if (!ec && link.string().starts_with(target)) ++n;
  }
  return n;
}

int count_entries(const char* dir) {
  int n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

/// A pipe for passing trivially copyable values from one process to another.
struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { EXPECT_EQ(::pipe(fds), 0); }
  ~Pipe() {
    for (int fd : fds) if (fd >= 0) ::close(fd);
  }
  template <class T>
  void put(const T& value) const {
    const auto* p = reinterpret_cast<const char*>(&value);
    for (std::size_t done = 0; done < sizeof(T);) {
      const ssize_t n = ::write(fds[1], p + done, sizeof(T) - done);
      if (n <= 0) std::abort();
      done += static_cast<std::size_t>(n);
    }
  }
  template <class T>
  T get() const {
    T value{};
    auto* p = reinterpret_cast<char*>(&value);
    for (std::size_t done = 0; done < sizeof(T);) {
      const ssize_t n = ::read(fds[0], p + done, sizeof(T) - done);
      if (n <= 0) throw std::runtime_error("pipe closed");
      done += static_cast<std::size_t>(n);
    }
    return value;
  }
};

TEST(PoolProcess, ArraysAllocatedInAChildAreAdoptedAndFreedByTheParent) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(test_pool());
  Pipe pipe;
  constexpr int kArrays = 200;
  const pid_t child = mpaio_test::spawn_child([&] {
    for (int i = 0; i < kArrays; ++i) {
      auto a = pool.allocate<std::int32_t>({static_cast<std::size_t>(1 + i * 37)});
      std::iota(a.begin(), a.end(), i);
      pipe.put(pool.send(a));  // the in-flight reference outlives `a`
    }
    return 0;
  });
  std::vector<PoolArray<std::int32_t>> got;
  for (int i = 0; i < kArrays; ++i) got.push_back(pool.adopt<std::int32_t>(pipe.get<PoolTransfer>()));
  EXPECT_TRUE(mpaio_test::wait_child(child).exited_with(0));
  for (int i = 0; i < kArrays; ++i) {
    ASSERT_EQ(got[i].size(), static_cast<std::size_t>(1 + i * 37));
    EXPECT_EQ(got[i][0], i);
    EXPECT_EQ(got[i][got[i].size() - 1], i + static_cast<int>(got[i].size()) - 1);
  }
  EXPECT_EQ(pool.stats().in_flight, 0u);
  got.clear();
  pool.reclaim_dead();
  pool.check_invariants();
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
}

TEST(PoolProcess, AChildFreesAnArrayTheParentAllocated) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(test_pool());
  auto a = pool.allocate<double>({64});
  a[5] = 2.5;
  const PoolTransfer t = pool.send(a);
  a.reset();  // only the transfer keeps it alive now
  const auto result = mpaio_test::run_in_child([&] {
    auto mine = pool.adopt<double>(t);
    return mine[5] == 2.5 ? 0 : 1;  // `mine` is freed here, in the child
  });
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  pool.check_invariants();
}

TEST(PoolProcess, ThreadsOfAForkedChildRegisterItOnce) {
  mpaio_test::Watchdog watchdog(60);
  // No watcher thread: the parent forks single-threaded, so the child may start threads (ThreadSanitizer's
  // die_after_fork checks exactly that).
  auto pool = SharedMemoryPool::create(unwatched_pool());
  Pipe counted;
  Pipe done;
  const pid_t child = mpaio_test::spawn_child([&] {
    // Four threads whose first pool call comes at once: one of them registers the process.
    std::atomic<int> waiting{4};
    std::vector<PoolArray<std::uint32_t>> held(4);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        waiting.fetch_sub(1);
        while (waiting.load() > 0) {
        }
        held[i] = pool.allocate<std::uint32_t>({100});
        std::fill(held[i].begin(), held[i].end(), static_cast<std::uint32_t>(i));
      });
    }
    for (auto& t : threads) t.join();
    counted.put(pool.stats().processes);
    for (int i = 0; i < 4; ++i) {
      if (std::any_of(held[i].begin(), held[i].end(), [&](std::uint32_t v) { return v != static_cast<std::uint32_t>(i); })) return 2;
    }
    (void)done.get<int>();
    return 0;  // `held` goes here, released by whichever thread's registration the child has
  });
  EXPECT_EQ(counted.get<std::uint32_t>(), 2u) << "the owner and the child, registered once";
  EXPECT_EQ(pool.stats().blocks_in_use, 4u);
  done.put(1);
  EXPECT_TRUE(mpaio_test::wait_child(child).exited_with(0));
  EXPECT_EQ(pool.reclaim_dead(), 0u) << "the child's handles released their blocks as they went";
  const auto s = pool.stats();
  EXPECT_EQ(s.processes, 1u);
  EXPECT_EQ(s.blocks_in_use, 0u);
  pool.check_invariants();
}

TEST(PoolProcess, TheSameArraySentTwiceLivesUntilBothAreDropped) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(test_pool());
  Pipe pipe;
  const pid_t child = mpaio_test::spawn_child([&] {
    auto a = pool.allocate<std::int64_t>({1000});
    std::iota(a.begin(), a.end(), 0);
    pipe.put(pool.send(a));
    pipe.put(pool.send(a));
    return 0;
  });
  const auto t1 = pipe.get<PoolTransfer>();
  const auto t2 = pipe.get<PoolTransfer>();
  EXPECT_TRUE(mpaio_test::wait_child(child).exited_with(0));
  auto first = pool.adopt<std::int64_t>(t1);
  {
    auto second = pool.adopt<std::int64_t>(t2);
    EXPECT_EQ(second.data(), first.data());
  }
  // Dropping one copy left the other intact: no block was reused under it.
  auto fresh = pool.allocate<std::int64_t>({1000});
  std::fill(fresh.begin(), fresh.end(), -1);
  EXPECT_EQ(first[999], 999);
  EXPECT_THROW((void)pool.adopt<std::int64_t>(t2), mpaio::StalePoolReference);
  first.reset();
  fresh.reset();
  pool.check_invariants();
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
}

TEST(PoolProcess, SigkillOfAProcessHolding1000BlocksReclaimDeadReleasesThemAll) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(unwatched_pool());  // the /proc fallback, called by hand
  EXPECT_FALSE(pool.watching());
  auto kept = pool.allocate<float>({10});
  Pipe ready;
  const pid_t child = mpaio_test::spawn_child([&] {
    std::vector<PoolArray<std::uint8_t>> held;
    for (int i = 0; i < 1000; ++i) held.push_back(pool.allocate<std::uint8_t>({static_cast<std::size_t>(64 + i * 100)}));
    ready.put(1);
    ::pause();
    return 0;
  });
  ASSERT_EQ(ready.get<int>(), 1);
  EXPECT_EQ(pool.stats().blocks_in_use, 1001u);
  ::kill(child, SIGKILL);
  EXPECT_EQ(mpaio_test::wait_child(child).signal, SIGKILL);
  EXPECT_EQ(pool.reclaim_dead(), 1000u);
  pool.check_invariants();
  const auto s = pool.stats();
  EXPECT_EQ(s.blocks_in_use, 1u);
  EXPECT_EQ(s.bytes_in_use, 64u);
  EXPECT_EQ(s.reclaimed_references, 1000u);
}

TEST(PoolProcess, TheOwnerReclaimsASigkilledProcessHolding1000BlocksByItself) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(test_pool());
  ASSERT_TRUE(pool.watching()) << "no pidfd_open on this kernel?";
  auto kept = pool.allocate<float>({10});
  Pipe ready;
  Pipe sent;
  const pid_t child = mpaio_test::spawn_child([&] {
    std::vector<PoolArray<std::uint8_t>> held;
    for (int i = 0; i < 1000; ++i) held.push_back(pool.allocate<std::uint8_t>({static_cast<std::size_t>(64 + i * 100)}));
    sent.put(pool.send(held[0]));  // a transfer it sent (becomes an orphan) ...
    ready.put(1);
    ::pause();
    return 0;
  });
  {
    auto a = pool.allocate<std::int32_t>({100});
    (void)pool.send(a, child);  // ... and one in flight to it (released with it)
  }
  ASSERT_EQ(ready.get<int>(), 1);
  const PoolTransfer orphan = sent.get<PoolTransfer>();
  EXPECT_EQ(pool.stats().blocks_in_use, 1002u);
  // The watcher holds a pidfd for the child (opened when the child registered).
  EXPECT_GE(wait_until([] { return count_fds("anon_inode:[pidfd]") == 1; }, std::chrono::seconds(10)).count(), 0);
  ::kill(child, SIGKILL);
  // No reclaim_dead(): the owner's watcher sees the pidfd become readable. The child is not even reaped
  // yet (a zombie). stats() only reads.
  const auto took = wait_until([&] { return pool.stats().reclaimed_references == 1001; }, std::chrono::seconds(10));
  ASSERT_GE(took.count(), 0) << "not reclaimed within 10 s: " << pool.stats().reclaimed_references;
  std::printf("reclaimed 1,000 blocks of a SIGKILLed process %lld ms after the kill\n",
              static_cast<long long>(took.count()));
  EXPECT_EQ(mpaio_test::wait_child(child).signal, SIGKILL);
  pool.check_invariants();
  auto s = pool.stats();
  EXPECT_EQ(s.processes, 1u);
  EXPECT_EQ(s.blocks_in_use, 2u);  // `kept` and the block of the orphaned transfer
  EXPECT_EQ(s.in_flight, 1u);
  EXPECT_GE(wait_until([] { return count_fds("anon_inode:[pidfd]") == 0; }, std::chrono::seconds(10)).count(), 0);
  EXPECT_EQ(pool.reclaim_dead(), 0u);  // nothing left for the fallback
  auto adopted = pool.adopt<std::uint8_t>(orphan);  // the orphan is still valid until released
  EXPECT_EQ(adopted.size(), 64u);
  adopted.reset();
  s = pool.stats();
  EXPECT_EQ(s.blocks_in_use, 1u);
  EXPECT_EQ(s.bytes_in_use, 64u);
  pool.check_invariants();
}

// Issue 11 item 10: a registered process that died and whose pid was then reused as a thread id (of any
// process) was never reclaimed by the watcher: pidfd_open of a thread id fails with EINVAL, which the
// watcher treated like a lack of descriptors and retried every 250 ms for ever. Here the slot names a live
// thread of this process with another start time: what a dead process's slot looks like once its pid
// names a thread. The watcher must find it gone from /proc (the start time differs) and reclaim it.
TEST(PoolProcess, TheWatcherReclaimsAProcessWhosePidNowNamesAThread) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(test_pool());
  ASSERT_TRUE(pool.watching()) << "no pidfd_open on this kernel?";
  std::promise<pid_t> started;
  std::promise<void> stop;
  std::thread thread([&, stopped = stop.get_future()] {
    started.set_value(static_cast<pid_t>(::gettid()));
    stopped.wait();
  });
  const pid_t thread_id = started.get_future().get();
  {
    auto a = pool.allocate<std::int32_t>({16});
    (void)pool.send(a, thread_id);  // registers a slot for the thread id, with the thread's start time
  }
  EXPECT_EQ(pool.stats().in_flight, 1u);
  {
    // Under the pool's lock, as the pool would write it: the slot's process started at another time.
    auto control = mpaio::SharedMemory::attach(pool.name(), mpaio::Access::read_write);
    auto* header = reinterpret_cast<mpaio::detail::pool::ControlHeader*>(control.data());
    ASSERT_EQ(::pthread_mutex_lock(&header->mutex), 0);
    int found = 0;
    for (auto& slot : header->processes) {
      if (slot.state == mpaio::detail::pool::slot_live && slot.pid == thread_id) {
        slot.start_time += 1;
        ++found;
      }
    }
    ::pthread_mutex_unlock(&header->mutex);
    ASSERT_EQ(found, 1);
  }
  const auto took = wait_until([&] { return pool.stats().reclaimed_references == 1; }, std::chrono::seconds(10));
  EXPECT_GE(took.count(), 0) << "the slot of a pid that names a thread was not reclaimed within 10 s";
  stop.set_value();
  thread.join();
  const auto s = pool.stats();
  EXPECT_EQ(s.processes, 1u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.bytes_in_use, 0u);
  pool.check_invariants();
}

TEST(PoolProcess, TheWatcherLeavesNoDescriptorOrThreadInChildrenOrAfterThePool) {
  mpaio_test::Watchdog watchdog(60);
  // ThreadSanitizer starts a thread of its own the first time the program starts one, and keeps it: start
  // and join one first, so that the thread counts below see the watcher only.
  std::thread([] {}).join();
  const int fds_before = count_entries("/proc/self/fd");
  const int threads_before = count_entries("/proc/self/task");
  const int sockets_before = count_fds("socket:");
  {
    auto pool = SharedMemoryPool::create(test_pool());
    ASSERT_TRUE(pool.watching());
    EXPECT_EQ(count_entries("/proc/self/task"), threads_before + 1);
    Pipe go;
    const pid_t child = mpaio_test::spawn_child([&] {
      // Inherited: the pool's memfds. Not inherited: the watcher's epoll, eventfd, socket and pidfds.
      if (count_fds("anon_inode:[eventpoll]") != 0 || count_fds("anon_inode:[eventfd]") != 0 ||
          count_fds("anon_inode:[pidfd]") != 0 || count_fds("socket:") != sockets_before) {
        return 2;
      }
      auto a = pool.allocate<std::int8_t>({1});  // registers: the owner opens a pidfd for this process
      (void)go.get<int>();
      return count_entries("/proc/self/task") == 1 ? 0 : 3;  // no watcher thread in a child
    });
    EXPECT_GE(wait_until([] { return count_fds("anon_inode:[pidfd]") == 1; }, std::chrono::seconds(10)).count(), 0);
    go.put(1);
    const auto result = mpaio_test::wait_child(child);
    EXPECT_TRUE(result.exited_with(0)) << result.describe();
    // A process that leaves normally releases its own slot; the watcher then drops its pidfd.
    EXPECT_GE(wait_until([] { return count_fds("anon_inode:[pidfd]") == 0; }, std::chrono::seconds(10)).count(), 0);
    EXPECT_EQ(pool.stats().processes, 1u);
    EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  }
  EXPECT_EQ(count_entries("/proc/self/fd"), fds_before);
  EXPECT_EQ(count_entries("/proc/self/task"), threads_before);
}

TEST(PoolProcess, InFlightReferencesToADeadReceiverAreReclaimed) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(unwatched_pool());
  Pipe go;
  const pid_t child = mpaio_test::spawn_child([&] {
    (void)go.get<int>();
    return 0;  // dies without adopting what was sent to it
  });
  {
    auto a = pool.allocate<std::int32_t>({100});
    (void)pool.send(a, child);
  }
  EXPECT_EQ(pool.stats().in_flight, 1u);
  go.put(1);
  EXPECT_TRUE(mpaio_test::wait_child(child).exited_with(0));
  EXPECT_EQ(pool.reclaim_dead(), 1u);
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  pool.check_invariants();
}

TEST(PoolProcess, AChildAttachesASegmentAddedAfterTheFork) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(test_pool());
  Pipe refs;
  const pid_t child = mpaio_test::spawn_child([&] {
    auto a = pool.attach<std::int32_t>(refs.get<mpaio::PoolArrayRef>());  // via /proc/<parent>/fd/<n>
    return a[a.size() - 1] == 77 ? 0 : 1;
  });
  auto big = pool.allocate<std::int32_t>({std::size_t{3} << 20});  // 12 MiB: a segment of its own
  big[big.size() - 1] = 77;
  refs.put(big.ref());
  const auto result = mpaio_test::wait_child(child);
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
  big.reset();
  pool.reclaim_dead();
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
}

TEST(PoolProcess, NamedPoolAttachedByNameInAnotherProcess) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create({.kind = mpaio::SegmentKind::named, .segment_size = 1 << 20,
                                        .max_blocks = 4096, .max_references = 4096});
  auto a = pool.allocate<std::int16_t>({8});
  a[7] = 7;
  const std::string name = pool.name();
  const auto ref = a.ref();
  const auto result = mpaio_test::run_in_child([&] {
    auto other = SharedMemoryPool::attach(name);
    auto b = other.attach<std::int16_t>(ref);
    auto c = other.allocate<std::int16_t>({8});
    return b[7] == 7 ? 0 : 1;  // leaving releases b and c and the slot
  });
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);
  pool.check_invariants();
}

// ---- a process out of descriptors, segments that cannot be mapped ------------------------------------------

/// Lowers this process's descriptor limit to 0 for its lifetime: every open() fails with EMFILE, as in a
/// process that has exhausted its descriptors. For forked children only.
class NoDescriptorsLeft {
 public:
  NoDescriptorsLeft() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit none = saved_;
    none.rlim_cur = 0;
    ok_ = ::setrlimit(RLIMIT_NOFILE, &none) == 0;
  }
  NoDescriptorsLeft(const NoDescriptorsLeft&) = delete;
  NoDescriptorsLeft& operator=(const NoDescriptorsLeft&) = delete;
  ~NoDescriptorsLeft() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  /// Whether opening a file now fails with EMFILE.
  [[nodiscard]] bool in_force() const {
    const int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
    return ok_ && fd < 0 && errno == EMFILE;
  }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

TEST(PoolProcess, AProcessThatCannotReadProcTakesNoLiveProcessForDead) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(unwatched_pool());
  auto mine = pool.allocate<std::int32_t>({16});
  Pipe ready;
  Pipe go;
  const pid_t holder = mpaio_test::spawn_child([&] {
    std::vector<PoolArray<std::uint8_t>> held;
    for (int i = 0; i < 10; ++i) held.push_back(pool.allocate<std::uint8_t>({100}));
    ready.put(1);
    (void)go.get<int>();
    return 0;
  });
  ASSERT_EQ(ready.get<int>(), 1);
  const auto result = mpaio_test::run_in_child([&] {
    if (pool.reclaim_dead() != 0) return 1;  // registers this process; nobody is dead yet
    NoDescriptorsLeft limit;
    if (!limit.in_force()) return 2;
    // /proc/<pid>/stat cannot be opened (EMFILE): that says nothing about the holder or the owner.
    return pool.reclaim_dead() == 0 ? 0 : 3;
  });
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
  EXPECT_EQ(pool.stats().blocks_in_use, 11u);  // the holder's ten and `mine`
  EXPECT_EQ(pool.stats().reclaimed_references, 0u);
  go.put(1);
  EXPECT_TRUE(mpaio_test::wait_child(holder).exited_with(0));
  pool.reclaim_dead();
  pool.check_invariants();
  EXPECT_EQ(pool.stats().blocks_in_use, 1u);
}

/// The descriptors of this process that point at `target` (a prefix, as count_fds).
std::set<int> fds_of(const std::string& target) {
  std::set<int> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto link = std::filesystem::read_symlink(entry.path(), ec);
    if (!ec && link.string().starts_with(target)) fds.insert(std::stoi(entry.path().filename().string()));
  }
  return fds;
}

TEST(PoolProcess, TheWatcherTakesNoProcessItCannotReadForDeadAndLooksAgainLater) {
  mpaio_test::Watchdog watchdog(60);
  // The owner is a child, so that its descriptor limit can be lowered while its watcher runs.
  const auto result = mpaio_test::run_in_child([] {
    const std::set<int> sockets_before = fds_of("socket:");
    auto pool = SharedMemoryPool::create(test_pool());
    if (!pool.watching()) return 10;
    std::set<int> sockets = fds_of("socket:");
    for (int fd : sockets_before) sockets.erase(fd);
    if (sockets.size() != 1) return 11;
    const int wake_up_socket = *sockets.begin();  // the watcher's
    Pipe go;
    Pipe ready;
    Pipe hold;
    const pid_t other = mpaio_test::spawn_child([&] {
      ::close(hold.fds[1]);  // hold.get() ends when the owner goes, whatever happens to it
      hold.fds[1] = -1;
      (void)go.get<int>();
      auto a = pool.allocate<std::uint8_t>({100});  // registers: one datagram to the watcher
      ready.put(1);
      (void)hold.get<int>();
      return 0;
    });
    struct Reaper {
      pid_t pid;
      ~Reaper() {
        ::kill(pid, SIGKILL);
        (void)mpaio_test::wait_child(pid);
      }
    } reaper{other};
    // One descriptor number left: the watcher's pidfd_open takes it, and its read of /proc/<pid>/stat that
    // checks the pidfd gets EMFILE.
    const int lowest_free = ::dup(0);
    ::close(lowest_free);
    rlimit saved{};
    ::getrlimit(RLIMIT_NOFILE, &saved);
    rlimit one_left = saved;
    one_left.rlim_cur = static_cast<rlim_t>(lowest_free) + 1;
    if (::setrlimit(RLIMIT_NOFILE, &one_left) != 0) return 12;
    go.put(1);
    (void)ready.get<int>();
    // The datagram was queued before `ready`; once it is drained, a fork waits for the watcher's step to end.
    int pending = 1;
    while (::ioctl(wake_up_socket, FIONREAD, &pending) == 0 && pending > 0) ::usleep(1000);
    const pid_t between_steps = ::fork();
    if (between_steps == 0) ::_exit(0);
    (void)mpaio_test::wait_child(between_steps);
    const auto during = pool.stats();
    ::setrlimit(RLIMIT_NOFILE, &saved);
    if (during.processes != 2 || during.reclaimed_references != 0 || during.blocks_in_use != 1) return 1;
    // Looked at again once descriptors are back: the process is watched, and its death seen with no call.
    const auto watched = wait_until([] { return count_fds("anon_inode:[pidfd]") == 1; }, std::chrono::seconds(10));
    if (watched.count() < 0) return 2;
    ::kill(other, SIGKILL);
    const auto reclaimed = wait_until([&] { return pool.stats().reclaimed_references == 1; }, std::chrono::seconds(10));
    return reclaimed.count() < 0 ? 3 : 0;
  }, std::chrono::seconds(40));
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
}

TEST(PoolProcess, ASegmentThatCannotBeMappedLeavesNoReferenceAndTheTokenGood) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create({.kind = mpaio::SegmentKind::named, .segment_size = std::size_t{4} << 20,
                                        .max_blocks = 4096, .max_references = 4096});
  Pipe ready;
  Pipe to_child;
  const pid_t child = mpaio_test::spawn_child([&] {
    auto tiny = pool.allocate<std::uint8_t>({1});  // registers
    ready.put(1);
    const auto ref = to_child.get<mpaio::PoolArrayRef>();
    const auto transfer = to_child.get<PoolTransfer>();
    const auto before = pool.stats();
    auto unchanged = [&] {
      const auto now = pool.stats();
      return now.references == before.references && now.in_flight == before.in_flight &&
             now.blocks_in_use == before.blocks_in_use;
    };
    // The array's segment was added after the fork and its name is gone: it cannot be mapped here.
    try {
      (void)pool.attach<std::int32_t>(ref);
      return 1;
    } catch (const mpaio::SystemError&) {
    }
    if (!unchanged()) return 2;
    try {
      (void)pool.adopt<std::int32_t>(transfer);
      return 3;
    } catch (const mpaio::SystemError&) {
    }
    if (!unchanged()) return 4;
    try {
      (void)pool.allocate<std::uint8_t>({std::size_t{1} << 20});  // only that segment has room
      return 5;
    } catch (const mpaio::SystemError&) {
    }
    return unchanged() ? 0 : 6;
  });
  ASSERT_EQ(ready.get<int>(), 1);
  auto filler = pool.allocate<std::uint8_t>({(std::size_t{4} << 20) - (std::size_t{256} << 10)});
  auto big = pool.allocate<std::int32_t>({std::size_t{512} << 10});  // 2 MiB: a segment added after the fork
  ASSERT_EQ(pool.stats().segments, 2u);
  std::fill(big.begin(), big.end(), 99);
  ASSERT_EQ(::shm_unlink(big.meta().shm_name.c_str()), 0) << big.meta().shm_name;  // this process keeps its mapping
  const PoolTransfer t = pool.send(big);  // to the owner, so that the child's death leaves it in flight
  to_child.put(big.ref());
  to_child.put(t);
  const auto result = mpaio_test::wait_child(child);
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
  auto adopted = pool.adopt<std::int32_t>(t);  // the token survived the child's failed adopt
  EXPECT_EQ(adopted[adopted.size() - 1], 99);
  adopted.reset();
  pool.reclaim_dead();
  pool.check_invariants();
  EXPECT_EQ(pool.stats().in_flight, 0u);
  EXPECT_EQ(pool.stats().blocks_in_use, 2u);  // filler and big
}

// Issue 11 item 9: a process mapping a segment read the segment's record under the lock as named, released
// the lock, then opened the name. The owner could adopt the segment in between (make the record anonymous
// and unlink the name), and the open failed with ENOENT although the segment was still reachable through
// the owner's descriptor. The fault hook stops the mapping process right there while the owner adopts the
// segment, for attach() and then for adopt(); both must map the segment and read the array.
const Pipe* g_paused = nullptr;  // mapping process -> owner: 'p' at every pause
const Pipe* g_resume = nullptr;  // owner -> mapping process: go on
void pause_at_segment_record(PoolFaultPoint point) {
  if (point != PoolFaultPoint::segment_record_read) return;
  g_paused->put('p');
  (void)g_resume->get<char>();
}

TEST(PoolProcess, MappingASegmentWhileTheOwnerAdoptsItFindsItThroughTheOwner) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create({.segment_size = 1 << 20, .max_segments = 8, .max_blocks = 4096,
                                        .max_references = 4096});
  Pipe to_owner;   // 'p': paused in the mapping; 'g': grow the next segment; 'd': done
  Pipe to_mapper;  // 'r': resume
  Pipe grown;      // transfers of the arrays the growers allocated
  const pid_t mapper = mpaio_test::spawn_child([&] {
    g_paused = &to_owner;
    g_resume = &to_mapper;
    mpaio::detail::set_pool_fault_hook(&pause_at_segment_record);
    int code = 0;
    try {
      to_owner.put('g');
      const auto first = grown.get<PoolTransfer>();
      auto attached = pool.attach<std::int32_t>(first.array);  // pauses while the owner adopts the segment
      if (attached[attached.size() - 1] != 1) code = 1;
      to_owner.put('g');
      auto adopted = pool.adopt<std::int32_t>(grown.get<PoolTransfer>());  // the same with adopt()
      if (adopted[adopted.size() - 1] != 2) code = 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mapper: %s\n", e.what());
      code = 3;
    }
    to_owner.put('d');
    return code;
  });
  std::vector<pid_t> growers;
  int pauses = 0;
  for (char c = to_owner.get<char>(); c != 'd'; c = to_owner.get<char>()) {
    if (c == 'g') {
      // A process other than the owner adds a segment (created named) and leaves; the owner has not seen it.
      const auto mark = static_cast<std::int32_t>(growers.size() + 1);
      growers.push_back(mpaio_test::spawn_child([&] {
        auto big = pool.allocate<std::int32_t>({std::size_t{1} << 19});  // 2 MiB: a segment of its own
        std::fill(big.begin(), big.end(), mark);
        grown.put(pool.send(big));
        return 0;
      }));
      ASSERT_TRUE(mpaio_test::wait_child(growers.back()).exited_with(0));
    } else {
      ++pauses;
      auto any = pool.allocate<std::uint8_t>({1});  // the owner's next operation adopts the new segment
      to_mapper.put('r');
    }
  }
  const auto result = mpaio_test::wait_child(mapper);
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
  EXPECT_GE(pauses, 2);
  EXPECT_EQ(pool.stats().segments, 3u);
  pool.reclaim_dead();
  pool.release_orphaned_transfers();  // the first array's transfer: its sender left
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  pool.check_invariants();
}

// ---- leaving a pool ------------------------------------------------------------------------------------------

TEST(PoolProcess, ANormalDetachReleasesTransfersToItAndOrphansThoseItSent) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create({.kind = mpaio::SegmentKind::named, .segment_size = 1 << 20,
                                        .max_blocks = 4096, .max_references = 4096});
  const std::string name = pool.name();
  Pipe up;
  Pipe down;
  const pid_t child = mpaio_test::spawn_child([&] {
    {
      auto attached = SharedMemoryPool::attach(name);
      auto a = attached.allocate<std::int32_t>({4});
      up.put(attached.send(a));  // in flight to the owner, sent by this process
      (void)down.get<int>();      // the owner has sent one to this process, never adopted
    }  // the pool object goes: a normal detach
    up.put(1);
    (void)down.get<int>();
    return 0;
  });
  const PoolTransfer from_child = up.get<PoolTransfer>();
  {
    auto b = pool.allocate<std::int32_t>({8});
    (void)pool.send(b, child);
  }
  down.put(1);
  ASSERT_EQ(up.get<int>(), 1);  // detached, still alive: nothing for a reclaim to do
  EXPECT_NO_THROW(pool.check_invariants());
  auto s = pool.stats();
  EXPECT_EQ(s.processes, 1u);
  EXPECT_EQ(s.in_flight, 1u);  // the transfer to the child was released with its slot
  EXPECT_EQ(pool.release_orphaned_transfers(), 1u);  // its sender left: an orphan, as after a reclaim
  EXPECT_THROW((void)pool.adopt<std::int32_t>(from_child), mpaio::StalePoolReference);
  down.put(1);
  EXPECT_TRUE(mpaio_test::wait_child(child).exited_with(0));
  s = pool.stats();
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.reclaimed_references, 0u);
  pool.check_invariants();
}

// ---- segments in /dev/shm ------------------------------------------------------------------------------------

/// The /dev/shm entries named after process `pid` (mpaio-<pid>-...).
std::set<std::string> shm_entries_of(pid_t pid) {
  std::set<std::string> names;
  const std::string prefix = "mpaio-" + std::to_string(pid) + "-";
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(prefix)) names.insert(name);
  }
  return names;
}

TEST(PoolProcess, AGrowthThatFailsInANonOwnerLeavesNoSegmentInDevShm) {
  mpaio_test::Watchdog watchdog(60);
  // Four block descriptors: three arrays and the rest of the first segment fill the table.
  auto pool = SharedMemoryPool::create({.segment_size = 1 << 16, .max_segments = 4, .max_blocks = 4,
                                        .max_references = 64});
  auto a = pool.allocate<std::uint8_t>({64});
  auto b = pool.allocate<std::uint8_t>({64});
  auto c = pool.allocate<std::uint8_t>({64});
  const auto owner_entries = shm_entries_of(::getpid());
  const pid_t child = mpaio_test::spawn_child([&] {
    try {
      (void)pool.allocate<std::uint8_t>({100'000});  // a new segment, then no descriptor for it
      return 1;
    } catch (const mpaio::PoolExhausted& e) {
      return std::string(e.what()).find("block table") != std::string::npos ? 0 : 2;
    }
  });
  const auto result = mpaio_test::wait_child(child);
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
  EXPECT_EQ(shm_entries_of(child), std::set<std::string>{});
  EXPECT_EQ(shm_entries_of(::getpid()), owner_entries);
  pool.reclaim_dead();
  pool.check_invariants();
}

TEST(PoolProcess, ASegmentAWorkerGrewOutlivesTheWorkerAndRemoveStaleSegments) {
  mpaio_test::Watchdog watchdog(60);
  for (const auto kind : {mpaio::SegmentKind::anonymous, mpaio::SegmentKind::named}) {
    SCOPED_TRACE(kind == mpaio::SegmentKind::named ? "named pool" : "anonymous pool");
    auto pool = SharedMemoryPool::create({.kind = kind, .segment_size = 1 << 20, .max_blocks = 4096,
                                          .max_references = 4096});
    Pipe sent;
    const pid_t worker = mpaio_test::spawn_child([&] {
      auto big = pool.allocate<std::int32_t>({std::size_t{1} << 19});  // 2 MiB: this process adds a segment
      std::iota(big.begin(), big.end(), 0);
      sent.put(pool.send(big));
      return 0;  // and leaves
    });
    const PoolTransfer t = sent.get<PoolTransfer>();
    ASSERT_TRUE(mpaio_test::wait_child(worker).exited_with(0));
    // The worker is gone: nothing of the live pool may look stale.
    const std::vector<std::string> removed = mpaio::remove_stale_segments();
    auto big = pool.adopt<std::int32_t>(t);
    ASSERT_EQ(big.size(), std::size_t{1} << 19);
    EXPECT_EQ(big[big.size() - 1], (1 << 19) - 1);
    for (const std::string& name : removed) EXPECT_NE(name, big.meta().shm_name);
    if (kind == mpaio::SegmentKind::named) {
      // numpy and other programs still reach it by name.
      const auto again = mpaio::SharedMemory::attach(big.meta().shm_name);
      EXPECT_GE(again.size(), big.meta().offset + big.nbytes());
    }
    big.reset();
    pool.reclaim_dead();
    pool.check_invariants();
  }
}

// ---- row slices and pool arrays read elsewhere -----------------------------------------------------------------

TEST(PoolProcess, RowSlicesSentToAnotherProcessReadTheirRows) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(test_pool());
  auto a = pool.allocate<std::int32_t>({10, 3});
  std::iota(a.begin(), a.end(), 0);
  Pipe pipe;
  const pid_t child = mpaio_test::spawn_child([&] {
    auto rows = pool.attach<std::int32_t>(pipe.get<mpaio::PoolArrayRef>());  // rows [4, 6)
    if (rows.size() != 6 || rows.shape()[0] != 2 || rows.shape()[1] != 3) return 1;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rows[i] != static_cast<std::int32_t>(12 + i)) return 2;
    }
    if (rows.view().row(1)[2] != 17) return 3;
    auto tail = pool.adopt<std::int32_t>(pipe.get<PoolTransfer>());  // rows [7, 10), sent as a slice
    if (tail.size() != 9 || tail.shape()[0] != 3) return 4;
    for (std::size_t i = 0; i < tail.size(); ++i) {
      if (tail[i] != static_cast<std::int32_t>(21 + i)) return 5;
    }
    const mpaio::ArrayMeta meta = tail.meta();
    return meta.offset == rows.meta().offset + 9 * sizeof(std::int32_t) ? 0 : 6;
  });
  pipe.put(a.ref(mpaio::Range{4, 6}));
  {
    auto tail = pool.attach<std::int32_t>(a.ref(mpaio::Range{7, 10}));
    pipe.put(pool.send(tail));
  }
  const auto result = mpaio_test::wait_child(child);
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
  a.reset();
  pool.reclaim_dead();
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  pool.check_invariants();
}

/// Copies its chunk out, so that two runs can be compared element by element.
struct ChunkCopyWorker : mpaio::Worker<ChunkCopyWorker, std::vector<std::int64_t>> {
  using Worker::Worker;
  static std::vector<std::int64_t> process(mpaio::ArrayView<const std::int64_t> data, mpaio::Range chunk) {
    const auto slice = data.slice(chunk);
    return {slice.begin(), slice.end()};
  }
  void process_callback(std::vector<std::int64_t> copy, mpaio::Range chunk) { pieces[chunk.start] = std::move(copy); }
  std::map<std::size_t, std::vector<std::int64_t>> pieces;
};

TEST(PoolProcess, TheOrchestratorProcessesAPoolArrayLikeASharedArray) {
  mpaio_test::Watchdog watchdog(120);
  constexpr std::size_t kRows = 1000;
  constexpr std::size_t kCols = 7;
  auto pool = SharedMemoryPool::create(test_pool());
  auto pad = pool.allocate<std::int64_t>({3});  // the array does not start its segment
  auto pooled = pool.allocate<std::int64_t>({kRows, kCols});
  auto plain = mpaio::SharedArray<std::int64_t>::create({kRows, kCols});
  std::iota(pooled.begin(), pooled.end(), 1);
  std::iota(plain.begin(), plain.end(), 1);
  ASSERT_NE(pooled.meta().offset, 0u);
  mpaio::ProcessPoolExecutor executor({.workers = 2});
  struct Outcome {
    std::int64_t total = 0;
    std::map<std::size_t, std::vector<std::int64_t>> pieces;
  };
  auto run = [&](const mpaio::ArrayMeta& meta) {
    AddIntWorker adder{mpaio::DataIterator::partitions(meta, 5)};
    ChunkCopyWorker copier{mpaio::DataIterator::rows(meta, 13)};
    mpaio::WorkerOrchestrator orchestrator{executor, {&adder, &copier}};
    const mpaio::RunReport report = orchestrator.run_blocking();
    EXPECT_TRUE(report.failures.empty());
    return Outcome{adder.total, std::move(copier.pieces)};
  };
  const Outcome from_pool = run(pooled.meta());
  const Outcome from_array = run(plain.meta());
  constexpr auto n = static_cast<std::int64_t>(kRows * kCols);
  EXPECT_EQ(from_array.total, n * (n + 1) / 2);
  EXPECT_EQ(from_pool.total, from_array.total);
  EXPECT_EQ(from_pool.pieces.size(), (kRows + 12) / 13);
  EXPECT_TRUE(from_pool.pieces == from_array.pieces) << "the chunks read through meta() differ";
}

// ---- SIGKILL inside the locked section ----------------------------------------------------------------------

PoolFaultPoint g_point;
int g_countdown = 0;
void kill_at_point(PoolFaultPoint point) {
  if (point == g_point && --g_countdown == 0) ::raise(SIGKILL);
}

class PoolFault : public ::testing::TestWithParam<std::tuple<PoolFaultPoint, int>> {};

TEST_P(PoolFault, TheNextLockerRecoversAndTheInvariantsHold) {
  mpaio_test::Watchdog watchdog(60);
  auto pool = SharedMemoryPool::create(test_pool());
  std::vector<PoolArray<std::uint8_t>> mine;
  for (int i = 0; i < 50; ++i) mine.push_back(pool.allocate<std::uint8_t>({static_cast<std::size_t>(100 + i * 999)}));
  for (int i = 0; i < 50; i += 3) mine[i].reset();
  const auto [point, nth] = GetParam();
  const auto result = mpaio_test::run_in_child([&, point = point, nth = nth] {
    g_point = point;
    g_countdown = nth;
    mpaio::detail::set_pool_fault_hook(&kill_at_point);
    std::vector<PoolArray<std::uint8_t>> held;
    for (int round = 0; round < 200; ++round) {
      held.push_back(pool.allocate<std::uint8_t>({static_cast<std::size_t>(64 + (round * 7919) % 20'000)}));
      if (round % 3 == 2) held.erase(held.begin() + round % static_cast<int>(held.size()));
      if (round % 5 == 0) pool.drop(pool.send(held.back()));
      if (round % 7 == 0) auto again = pool.attach<std::uint8_t>(held.front().ref());
    }
    return 3;  // the point was never reached
  });
  ASSERT_EQ(result.signal, SIGKILL) << result.describe();
  const auto before = pool.stats();  // locks: the dead owner's transaction is rolled back
  EXPECT_EQ(before.recoveries, 1u);
  pool.check_invariants();
  pool.reclaim_dead();
  pool.release_orphaned_transfers();  // a transfer the child sent and was dropping when it died
  pool.check_invariants();
  for (auto& a : mine) {
    if (a) {
      EXPECT_NO_THROW(a.reset());
    }
  }
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  auto after = pool.allocate<std::uint8_t>({5000});  // still allocates
  pool.check_invariants();
}

INSTANTIATE_TEST_SUITE_P(
    Points, PoolFault,
    ::testing::Combine(::testing::Values(PoolFaultPoint::locked, PoolFaultPoint::block_taken, PoolFaultPoint::block_split,
                                         PoolFaultPoint::reference_taken, PoolFaultPoint::block_merged,
                                         PoolFaultPoint::reference_released, PoolFaultPoint::before_commit),
                       ::testing::Values(1, 17, 60)));

// ---- fork() beside threads ----------------------------------------------------------------------------------

// Issue 11 item 14: a pool's local and registration mutexes and the process-wide list of pools are locks of
// one process. A thread that held one when another thread forked left it locked for ever in the child, whose
// first use of it then hung. Threads hammer each of them while the process forks again and again, and each
// child uses them all. Not deterministic: the fork must come while another thread holds a lock, which the
// tight loops make likely (before the fork handlers the first rounds hung a child, killed after 5 s).
TEST(PoolProcess, ForksBesideThreadsHoldingThePoolsLocksLeaveTheChildAUsablePool) {
  mpaio_test::Watchdog watchdog(180);
  // No watcher threads: this process forks single-threaded, so that its children may start threads.
  auto pool = SharedMemoryPool::create(unwatched_pool());
  auto named = SharedMemoryPool::create({.kind = mpaio::SegmentKind::named, .segment_size = 1 << 20,
                                         .max_blocks = 1024, .max_references = 1024, .watch_processes = false});
  const std::string named_name = named.name();
  constexpr int kRounds = 8;
  constexpr int kForks = 25;
  for (int round = 0; round < kRounds; ++round) {
    const auto result = mpaio_test::run_in_child([&] {
      std::atomic<bool> stop{false};
      // The pool that a thread has just attached and is registering (its registration mutex is taken),
      // published under `published` so that a fork sees it alive.
      std::mutex published;
      SharedMemoryPool* registering = nullptr;
      std::vector<std::thread> threads;
      threads.emplace_back([&] {  // the local mutex: meta() reads a segment name under it
        auto a = pool.allocate<std::int32_t>({16});
        while (!stop.load()) (void)a.meta();
      });
      threads.emplace_back([&] {  // the list of pools
        while (!stop.load()) (void)SharedMemoryPool::find(pool.id());
      });
      threads.emplace_back([&] {  // registration: a pool attached by name registers on its first call
        while (!stop.load()) {
          auto attached = SharedMemoryPool::attach(named_name);
          {
            std::lock_guard lock(published);
            registering = &attached;
          }
          (void)attached.release_orphaned_transfers();
          std::lock_guard lock(published);
          registering = nullptr;
        }
      });
      int failed = 0;
      for (int fork = 0; fork < kForks && failed == 0; ++fork) {
        published.lock();
        SharedMemoryPool* other = registering;
        std::fflush(nullptr);
        const pid_t child = ::fork();
        if (child == 0) {
          // One thread here: every lock another thread held at the fork must be free.
          auto a = pool.allocate<std::int32_t>({16});  // registers this process
          if (a.meta().shm_name.empty()) ::_exit(2);
          if (SharedMemoryPool::find(pool.id()) != &pool) ::_exit(3);
          auto b = pool.adopt<std::int32_t>(pool.send(a));
          if (other != nullptr) (void)other->release_orphaned_transfers();  // registers with the named pool
          ::_exit(0);
        }
        published.unlock();
        const auto r = mpaio_test::wait_child(child, std::chrono::seconds(5));
        if (!r.exited_with(0)) {
          std::fprintf(stderr, "fork %d: the child %s\n", fork, r.describe().c_str());
          failed = 1;
        }
        pool.reclaim_dead();  // the child's slot
      }
      stop.store(true);
      for (auto& t : threads) t.join();
      return failed;
    }, std::chrono::seconds(60));
    ASSERT_TRUE(result.exited_with(0)) << "round " << round << ": " << result.describe();
    pool.reclaim_dead();
    named.reclaim_dead();
  }
  pool.check_invariants();
  named.check_invariants();
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  EXPECT_EQ(named.stats().processes, 1u);
}

// ---- arrays returned by ProcessPoolExecutor workers ---------------------------------------------------------

SharedMemoryPool* g_pool = nullptr;  // created before the executor: inherited by its workers

struct TileDoubler : mpaio::Worker<TileDoubler, PoolArray<float>> {
  using Worker::Worker;
  static PoolArray<float> process(mpaio::ArrayView<const std::int32_t> data, mpaio::Range r) {
    auto out = g_pool->allocate<float>({2, 2});
    for (float& x : out) x = static_cast<float>(2 * data[r.start]);
    return out;  // travels as a transfer addressed to the pool's owner
  }
  void process_callback(PoolArray<float> tile, mpaio::Range r) {
    if (tile[3] != static_cast<float>(2 * r.start)) ++wrong;
    tiles.push_back(std::move(tile));
  }
  std::vector<PoolArray<float>> tiles;
  int wrong = 0;
};

TEST(PoolProcess, HundredThousandArraysReturnedByWorkersAndDroppedAtOnce) {
  mpaio_test::Watchdog watchdog(240);
  auto pool = SharedMemoryPool::create(test_pool());
  g_pool = &pool;
  constexpr std::size_t kTiles = 100'000;
  auto indices = mpaio::SharedArray<std::int32_t>::create({kTiles});
  std::iota(indices.begin(), indices.end(), 0);
  {
    mpaio::ProcessPoolExecutor executor({.workers = 2});
    TileDoubler doubler{mpaio::DataIterator::chunks(indices.meta(), 1)};
    mpaio::WorkerOrchestrator orchestrator{executor, {&doubler}};
    orchestrator.run_blocking();
    EXPECT_EQ(doubler.tiles.size(), kTiles);
    EXPECT_EQ(doubler.wrong, 0);
    EXPECT_EQ(pool.stats().blocks_in_use, kTiles);
    EXPECT_EQ(pool.stats().in_flight, 0u);
    doubler.tiles.clear();  // all at once
    EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  }
  pool.reclaim_dead();  // the workers' slots
  pool.check_invariants();
  EXPECT_EQ(pool.stats().processes, 1u);
  g_pool = nullptr;
}

}  // namespace
