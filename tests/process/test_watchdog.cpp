// The test Watchdog itself: disarmed when destroyed in time; on expiry it names the hung test, kills the
// processes the test started and exits with status 1. Checked in a forked child, so that the expiry ends
// the child rather than this test program.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/child_process.hpp"
#include "support/proc.hpp"
#include "support/watchdog.hpp"

namespace {

TEST(Watchdog, DestroyedInTimeItDoesNothing) {
  for (int i = 0; i < 20; ++i) {
    mpaio_test::Watchdog watchdog(std::chrono::milliseconds(500));
  }
  SUCCEED();  // still running: no watchdog fired
}

TEST(Watchdog, OnExpiryNamesTheTestKillsItsProcessesAndExits) {
  mpaio_test::Watchdog outer(60);
  int out[2];   // the child's stderr
  int pids[2];  // the pid of the child's own child
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(pids, O_CLOEXEC), 0);
  const auto result = mpaio_test::run_in_child(
      [&] {
        ::dup2(out[1], STDERR_FILENO);
        const pid_t sleeper = ::fork();  // a process "the test" started and would leave behind
        if (sleeper == 0) {
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
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(n));
  pid_t sleeper = 0;
  const ssize_t got = ::read(pids[0], &sleeper, sizeof sleeper);
  ::close(out[0]);
  ::close(pids[0]);
  EXPECT_TRUE(result.exited_with(1)) << result.describe();
  EXPECT_NE(text.find("WATCHDOG"), std::string::npos) << text;
  EXPECT_NE(text.find("Watchdog.OnExpiryNamesTheTestKillsItsProcessesAndExits"), std::string::npos) << text;
  ASSERT_EQ(got, static_cast<ssize_t>(sizeof sleeper));
  EXPECT_TRUE(mpaio_test::exits_soon(sleeper)) << "the watchdog left the test's process " << sleeper << " running";
  EXPECT_NE(text.find("SIGKILL " + std::to_string(sleeper)), std::string::npos) << text;
}

}  // namespace
