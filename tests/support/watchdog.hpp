#pragma once
// Test helper: a deadline on a whole test, so that a hang fails the test instead of blocking CI.
//
//     TEST(Pool, Runs) {
//       mpaio_test::Watchdog watchdog(60);   // first line of any test that starts processes
//       ...
//     }
//
// If the test is still running when the limit passes, a watchdog thread prints which test hung, kills
// every descendant of this process (the pool's fork server and workers, forked children) with SIGKILL,
// and leaves with std::_Exit(1). Destroying the Watchdog in time disarms it. Start processes after the
// Watchdog exists: its thread is idle (waiting on a condition variable, holding no lock) when they fork.

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "support/proc.hpp"

namespace mpaio_test {

/// RAII deadline for the current test: on expiry, reports the test, kills this process's descendants
/// and exits with status 1.
class Watchdog {
 public:
  explicit Watchdog(int seconds) : Watchdog(std::chrono::seconds(seconds)) {}
  explicit Watchdog(std::chrono::milliseconds limit) : test_name_(current_test_name()) {
    thread_ = std::thread([this, limit] {
      std::unique_lock lock(mutex_);
      if (disarmed_.wait_for(lock, limit, [this] { return done_; })) return;
      expire(limit);
    });
  }
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    disarmed_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  static std::string current_test_name() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    if (info == nullptr) return "(outside a test)";
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    if (info->value_param() != nullptr) name += std::string(" [") + info->value_param() + "]";
    return name;
  }

  [[noreturn]] void expire(std::chrono::milliseconds limit) const {
    std::fprintf(stderr, "\n*** WATCHDOG: test %s still running after %lld ms: killing its processes and exiting\n",
                 test_name_.c_str(), static_cast<long long>(limit.count()));
    // Children first in the list, but kill them all: the order does not matter for SIGKILL. Two passes catch
    // a process forked (by the fork server, say) while the first pass ran.
    for (int pass = 0; pass < 2; ++pass) {
      for (pid_t pid : descendants_of(::getpid())) {
        std::fprintf(stderr, "*** WATCHDOG: SIGKILL %d\n", static_cast<int>(pid));
        ::kill(pid, SIGKILL);
      }
    }
    std::fflush(stderr);
    std::_Exit(1);
  }

  std::string test_name_;
  std::mutex mutex_;
  std::condition_variable disarmed_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace mpaio_test
