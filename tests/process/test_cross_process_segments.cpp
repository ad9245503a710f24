// Segments shared with real child processes: a forked child attaches a named segment by name, or an
// anonymous one inherited by fork through its memfd: name, writes, and the parent sees the writes.
// Every fork runs under a watchdog (support/child_process.hpp): a hang fails the test instead of blocking.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

#include "mpaio/data_iterator.hpp"
#include "mpaio/detail/unique_fd.hpp"
#include "mpaio/shared_array.hpp"
#include "mpaio/shared_memory.hpp"
#include "support/child_process.hpp"

namespace mpaio {
// Readable parameter values in test names ("... # GetParam() = named").
inline void PrintTo(SegmentKind kind, std::ostream* os) { *os << (kind == SegmentKind::named ? "named" : "anonymous"); }
}  // namespace mpaio

namespace {

using mpaio::Access;
using mpaio::ArrayMeta;
using mpaio::SegmentKind;
using mpaio::SharedArray;
using mpaio::SharedMemory;
using mpaio_test::run_in_child;

constexpr mpaio::SegmentOptions kNamed{.kind = SegmentKind::named};

class CrossProcess : public ::testing::TestWithParam<SegmentKind> {};

std::string kind_name(const ::testing::TestParamInfo<SegmentKind>& info) {
  return info.param == SegmentKind::named ? "Named" : "Anonymous";
}

TEST_P(CrossProcess, ChildAttachesByNameAndWritesParentSeesIt) {
  auto segment = SharedMemory::create(1 << 20, {.kind = GetParam()});
  const std::string name = segment.name();
  const auto result = run_in_child([&] {
    // Only the name crosses over; the child opens its own mapping from it.
    auto mine = SharedMemory::attach(name, Access::read_write);
    if (mine.data() == segment.data()) return 3;  // must be a separate mapping
    if (mine.size() != std::size_t{1} << 20) return 4;
    for (std::size_t i = 0; i < mine.size(); ++i) mine.data()[i] = static_cast<std::byte>(i * 7);
    return 0;
  });
  ASSERT_TRUE(result.exited_with(0)) << result.describe();
  for (std::size_t i = 0; i < segment.size(); ++i) {
    ASSERT_EQ(segment.data()[i], static_cast<std::byte>(i * 7)) << "byte " << i;
  }
}

TEST_P(CrossProcess, ChildAttachesAnArrayFromItsJsonAndReadsParentData) {
  auto array = SharedArray<std::int64_t>::create({1000}, {.kind = GetParam()});
  std::iota(array.begin(), array.end(), 1);
  const std::string json = array.meta().to_json();
  const auto result = run_in_child([&] {
    auto mine = SharedArray<std::int64_t>::attach(ArrayMeta::from_json(json));
    if (mine.segment().writable()) return 2;
    std::int64_t sum = 0;
    for (std::int64_t v : mine) sum += v;
    return sum == 1000 * 1001 / 2 ? 0 : 1;
  });
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
}

TEST_P(CrossProcess, ParentWritesAfterTheChildAttachedAreSeen) {
  auto array = SharedArray<std::int64_t>::create({16}, {.kind = GetParam()});
  const ArrayMeta meta = array.meta();
  int to_child[2];
  int to_parent[2];
  ASSERT_EQ(::pipe2(to_child, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(to_parent, O_CLOEXEC), 0);
  mpaio::detail::UniqueFd child_read(to_child[0]), parent_write(to_child[1]);
  mpaio::detail::UniqueFd parent_read(to_parent[0]), child_write(to_parent[1]);
  auto wait_byte = [](int fd) {
    pollfd p{fd, POLLIN, 0};
    char c = 0;
    return ::poll(&p, 1, 5000) == 1 && ::read(fd, &c, 1) == 1;
  };
  const char go = 'g';

  std::fflush(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    try {
      auto mine = SharedArray<std::int64_t>::attach(meta);
      if (mine[15] != 0) code = 2;
      if (::write(child_write.get(), &go, 1) != 1) code = 3;  // attached
      if (code == 0 && !wait_byte(child_read.get())) code = 4;  // parent has written
      if (code == 0 && mine[15] != 4242) code = 1;
    } catch (...) {
      code = 5;
    }
    ::_exit(code);
  }
  const bool attached = wait_byte(parent_read.get());
  if (attached) {
    array[15] = 4242;
    EXPECT_EQ(::write(parent_write.get(), &go, 1), 1);
  }
  const auto result = mpaio_test::wait_child(pid);  // reaped whatever happened above
  EXPECT_TRUE(attached) << "the child never attached";
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
}

// A worker-count sweep: n children each fill their own balanced partition of one array.
TEST_P(CrossProcess, ChildrenFillTheirPartitions) {
  for (std::size_t workers : {1u, 2u, 4u, 7u}) {
    auto array = SharedArray<std::int64_t>::create({100'003}, {.kind = GetParam()});
    const auto parts = mpaio::DataIterator::partitions(array.meta(), workers);
    std::vector<pid_t> pids;
    for (std::size_t w = 0; w < parts.size(); ++w) {
      std::fflush(nullptr);
      const pid_t pid = ::fork();
      if (pid < 0) {
        ADD_FAILURE() << "fork failed";
        break;  // still reap the children already started
      }
      if (pid == 0) {
        int code = 0;
        try {
          auto mine = SharedArray<std::int64_t>::attach(array.meta(), Access::read_write);
          for (std::int64_t& v : mine.view().slice(parts[w])) v = static_cast<std::int64_t>(w) + 1;
        } catch (...) {
          code = 1;
        }
        ::_exit(code);
      }
      pids.push_back(pid);
    }
    for (pid_t pid : pids) {
      const auto result = mpaio_test::wait_child(pid);
      EXPECT_TRUE(result.exited_with(0)) << "workers=" << workers << ": " << result.describe();
    }
    for (std::size_t w = 0; w < parts.size(); ++w) {
      for (std::size_t i = parts[w].start; i < parts[w].end; ++i) {
        ASSERT_EQ(array[i], static_cast<std::int64_t>(w) + 1) << "workers=" << workers << " element " << i;
      }
    }
  }
}

TEST_P(CrossProcess, AChildExitingDoesNotRemoveTheSegment) {
  auto segment = SharedMemory::create(4096, {.kind = GetParam()});
  const std::string name = segment.name();
  const auto result = run_in_child([&] {
    auto mine = SharedMemory::attach(name, Access::read_write);
    mine.data()[0] = std::byte{1};
    return 0;  // ~SharedMemory of an attachment must not unlink
  });
  ASSERT_TRUE(result.exited_with(0)) << result.describe();
  EXPECT_EQ(segment.data()[0], std::byte{1});
  EXPECT_NO_THROW((void)SharedMemory::attach(name));
  if (GetParam() == SegmentKind::named) {
    EXPECT_TRUE(std::filesystem::exists("/dev/shm" + name));
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, CrossProcess, ::testing::Values(SegmentKind::named, SegmentKind::anonymous),
                         kind_name);

TEST(CrossProcessAnonymous, AnUnrelatedProcessCannotAttachAMemfdName) {
  auto segment = SharedMemory::create(4096);
  const std::string name = segment.name();
  // A child that drops the inherited segment before attaching stands for a process that never held it.
  const auto result = run_in_child([&] {
    segment = SharedMemory::create(16);
    try {
      (void)SharedMemory::attach(name);
      return 1;
    } catch (const mpaio::SystemError& e) {
      return e.code().value() == ENOENT ? 0 : 2;
    }
  });
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
}

TEST(CrossProcessNamed, SegmentIsGoneAfterTheCreatorIsDestroyed) {
  std::string name;
  { name = SharedMemory::create(4096, kNamed).name(); }
  const auto result = run_in_child([&] {
    try {
      (void)SharedMemory::attach(name);
      return 1;
    } catch (const mpaio::SystemError& e) {
      return e.code().value() == ENOENT ? 0 : 2;
    }
  });
  EXPECT_TRUE(result.exited_with(0)) << result.describe();
}

// The watchdog itself: a child that hangs is killed and reported, not waited for forever.
TEST(Watchdog, AHangingChildIsKilledAndReported) {
  const auto start = std::chrono::steady_clock::now();
  const auto result = run_in_child(
      [] {
        for (;;) ::pause();
        return 0;
      },
      std::chrono::milliseconds(200));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(result.timed_out);
  EXPECT_FALSE(result.exited_with(0));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "the killed child was reaped";
}

TEST(Watchdog, ReportsExitCodesAndSignals) {
  EXPECT_TRUE(run_in_child([] { return 7; }).exited_with(7));
  const auto killed = run_in_child([] {
    ::kill(::getpid(), SIGTERM);
    ::pause();
    return 0;
  });
  EXPECT_FALSE(killed.exited);
  EXPECT_EQ(killed.signal, SIGTERM);
  EXPECT_TRUE(run_in_child([]() -> int { throw std::runtime_error("boom"); }).exited_with(120));
}

}  // namespace
