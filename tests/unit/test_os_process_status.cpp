// Unit tests of process liveness: process_status() for this process, a thread, a reaped child and a
// zombie; open_checked_pidfd() for a live process, a process of another start time, a dead one, and a
// thread id (pidfds are for processes: /proc decides).

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "os/process_status.hpp"
#include "support/child_process.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::detail::CheckedPidfd;
using mpaio::detail::open_checked_pidfd;
using mpaio::detail::process_status;
using mpaio::detail::ProcessStatus;

/// A thread that waits until told to end; its id is a pid /proc answers for, but not a process.
class Thread {
 public:
  Thread()
      : thread_([this] {
          started_.set_value(static_cast<pid_t>(::gettid()));
          stopped_.get_future().wait();
        }) {}
  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;
  ~Thread() {
    stopped_.set_value();
    thread_.join();
  }
  pid_t tid() { return tid_.get(); }

 private:
  std::promise<pid_t> started_;
  std::future<pid_t> tid_ = started_.get_future();
  std::promise<void> stopped_;
  std::thread thread_;  // last: it starts once the promises exist
};

TEST(OsProcessStatus, ThisProcessIsAliveWithAStableStartTime) {
  const ProcessStatus status = process_status(::getpid());
  ASSERT_EQ(status.state, ProcessStatus::State::alive);
  EXPECT_GT(status.start_time, 0u);
  EXPECT_TRUE(status.is(status.start_time));
  EXPECT_FALSE(status.gone(status.start_time));
  EXPECT_TRUE(status.gone(status.start_time + 1));  // another start time: the pid was reused
  EXPECT_EQ(mpaio::detail::own_start_time("test"), status.start_time);
}

TEST(OsProcessStatus, AZombieAndAReapedChildAreDead) {
  mpaio_test::Watchdog watchdog(30);
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  // Not reaped yet: a zombie once it has exited.
  ProcessStatus status;
  for (int i = 0; i < 10'000; ++i) {
    status = process_status(child);
    if (status.state == ProcessStatus::State::dead) break;
    ::usleep(1000);
  }
  EXPECT_EQ(status.state, ProcessStatus::State::dead);
  EXPECT_TRUE(mpaio_test::wait_child(child).exited_with(0));
  EXPECT_EQ(process_status(child).state, ProcessStatus::State::dead);
  EXPECT_EQ(open_checked_pidfd(child, 1).state, CheckedPidfd::State::gone);
}

TEST(OsProcessStatus, APidfdIsOpenedOnlyForTheProcessThatStartedThen) {
  if (!mpaio::detail::pidfd_supported()) GTEST_FAIL() << "no pidfd_open on this kernel";
  const std::uint64_t start = process_status(::getpid()).start_time;
  CheckedPidfd mine = open_checked_pidfd(::getpid(), start);
  EXPECT_EQ(mine.state, CheckedPidfd::State::open);
  EXPECT_TRUE(mine.fd);
  CheckedPidfd other = open_checked_pidfd(::getpid(), start + 1);  // as if our pid had been reused
  EXPECT_EQ(other.state, CheckedPidfd::State::gone);
  EXPECT_FALSE(other.fd);
}

TEST(OsProcessStatus, AThreadIdIsDecidedByItsStartTime) {
  Thread thread;
  const pid_t tid = thread.tid();
  const ProcessStatus status = process_status(tid);  // /proc answers for a thread id too
  ASSERT_EQ(status.state, ProcessStatus::State::alive);
  // pidfd_open(tid) fails with EINVAL: a registered process whose pid now names a thread is gone when the
  // start time differs; the thread that started then is not taken for dead.
  EXPECT_EQ(open_checked_pidfd(tid, status.start_time + 1).state, CheckedPidfd::State::gone);
  EXPECT_EQ(open_checked_pidfd(tid, status.start_time).state, CheckedPidfd::State::undecided);
}

}  // namespace
