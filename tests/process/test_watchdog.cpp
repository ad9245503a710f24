// The test Watchdog itself: disarmed when destroyed in time; on expiry it names the hung test, kills the
// processes the test started and exits with status 1. Checked in a forked child, so that the expiry ends
// the child rather than this test program; every wait here is bounded.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "mpaio/process_pool_executor.hpp"
#include "support/child_process.hpp"
#include "support/proc.hpp"
#include "support/watchdog.hpp"

namespace {

/// Reads `fd` until end of file or until nothing arrives for 10 s.
std::string read_bounded(int fd) {
  std::string text;
  char buffer[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10'000) != 1) break;
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  return text;
}

TEST(Watchdog, DestroyedInTimeItDoesNothing) {
  for (int i = 0; i < 20; ++i) {
    mpaio_test::Watchdog watchdog(std::chrono::milliseconds(300));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // past the last limit: still alive
  SUCCEED();
}

TEST(Watchdog, OnExpiryNamesTheTestKillsItsProcessesAndExits) {
  mpaio_test::Watchdog outer(60);  // armed in this process; forked children do not inherit the timer
  const mpaio_test::Subreaper subreaper;  // the killed grandchild becomes ours to reap, not init's
  int out[2];   // the child's stderr
  int pids[2];  // the pid of the child's own child
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(pids, O_CLOEXEC), 0);
  const auto result = mpaio_test::run_in_child(
      [&] {
        ::dup2(out[1], STDERR_FILENO);
        const pid_t sleeper = ::fork();  // a process "the test" started and would leave behind
        if (sleeper == 0) {
          ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a safety net should the watchdog fail to kill it
          for (;;) ::pause();
        }
        if (::write(pids[1], &sleeper, sizeof sleeper) != sizeof sleeper) return 2;
        mpaio_test::Watchdog watchdog(std::chrono::milliseconds(200));
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // hangs
        return 3;
      },
      std::chrono::seconds(30));
  ::close(out[1]);
  ::close(pids[1]);
  const std::string text = read_bounded(out[0]);
  pid_t sleeper = 0;
  const ssize_t got = ::read(pids[0], &sleeper, sizeof sleeper);
  ::close(out[0]);
  ::close(pids[0]);
  EXPECT_TRUE(result.exited_with(1)) << result.describe();
  EXPECT_NE(text.find("WATCHDOG"), std::string::npos) << text;
  EXPECT_NE(text.find("Watchdog.OnExpiryNamesTheTestKillsItsProcessesAndExits"), std::string::npos) << text;
  ASSERT_EQ(got, static_cast<ssize_t>(sizeof sleeper));
  EXPECT_NE(text.find("SIGKILL " + std::to_string(sleeper)), std::string::npos) << text;
  EXPECT_TRUE(mpaio_test::reaped_soon(sleeper)) << "the test's process " << sleeper << " is still running";
}

TEST(Watchdog, FiresWhileTheTestIsBlockedInASystemCall) {
  mpaio_test::Watchdog outer(60);
  const auto result = mpaio_test::run_in_child(
      [&] {
        int fds[2];
        if (::pipe(fds) != 0) return 2;
        mpaio_test::Watchdog watchdog(std::chrono::milliseconds(100));
        char c = 0;
        (void)::read(fds[0], &c, 1);  // nobody writes: blocks
        return 3;
      },
      std::chrono::seconds(30));
  EXPECT_TRUE(result.exited_with(1)) << result.describe();
}

TEST(Watchdog, OnExpiryKillsTheForkServerAndWorkersOfAPool) {
  mpaio_test::Watchdog outer(60);
  const mpaio_test::Subreaper subreaper;  // the killed pool processes become ours to reap, not init's
  int out[2];   // the child's stderr
  int pids[2];  // the pids of its pool
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(pids, O_CLOEXEC), 0);
  const auto result = mpaio_test::run_in_child(
      [&] {
        ::dup2(out[1], STDERR_FILENO);
        mpaio::ProcessPoolExecutor pool{{.workers = 2}};
        const pid_t started[3] = {pool.fork_server_pid(), pool.worker_pid(0), pool.worker_pid(1)};
        if (::write(pids[1], started, sizeof started) != sizeof started) return 2;
        mpaio_test::Watchdog watchdog(std::chrono::milliseconds(200));
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // hangs with its pool alive
        return 3;
      },
      std::chrono::seconds(30));
  ::close(out[1]);
  ::close(pids[1]);
  const std::string text = read_bounded(out[0]);
  pid_t started[3] = {};
  const ssize_t got = ::read(pids[0], started, sizeof started);
  ::close(out[0]);
  ::close(pids[0]);
  EXPECT_TRUE(result.exited_with(1)) << result.describe();
  ASSERT_EQ(got, static_cast<ssize_t>(sizeof started));
  for (pid_t pid : started) {
    // Killed by the watchdog itself, not only by the pool's own clean-up once the caller is gone.
    EXPECT_NE(text.find("SIGKILL " + std::to_string(pid)), std::string::npos) << "pid " << pid << "\n" << text;
    EXPECT_TRUE(mpaio_test::reaped_soon(pid)) << "pool process " << pid << " survived the watchdog";
  }
}

}  // namespace
