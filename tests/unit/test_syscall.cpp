// detail::sys / detail::sys_errno_result: the one system-call wrapper (error text, errno, EINTR retry).
#include <fcntl.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "mpaio/detail/syscall.hpp"
#include "mpaio/detail/unique_fd.hpp"
#include "mpaio/error.hpp"

namespace {

using mpaio::detail::describe_call;
using mpaio::detail::sys;
using mpaio::detail::sys_errno_result;

TEST(Syscall, DescribeCallFormatsKeyValuePairs) {
  EXPECT_EQ(describe_call("close"), "close()");
  EXPECT_EQ(describe_call("open", "path", "/tmp/x"), "open(path=/tmp/x)");
  EXPECT_EQ(describe_call("mmap", "fd", 3, "size", std::size_t{4096}, "prot", "rw"), "mmap(fd=3, size=4096, prot=rw)");
  EXPECT_EQ(describe_call("x", "name", std::string("abc"), "n", -1), "x(name=abc, n=-1)");
}

TEST(Syscall, ReturnsTheResultOnSuccess) {
  EXPECT_EQ(sys("fake", [] { return 42; }), 42);
  EXPECT_EQ(sys("fake", [] { return 0L; }), 0L);
  int calls = 0;
  EXPECT_EQ(sys("fake", [&] { return ++calls, 7; }, "k", 1), 7);
  EXPECT_EQ(calls, 1);
}

TEST(Syscall, FailureThrowsSystemErrorNamingCallArgumentsAndErrno) {
  try {
    (void)sys("open", [] { return ::open("/nonexistent/mpaio-test", O_RDONLY); }, "path", "/nonexistent/mpaio-test",
              "flags", "O_RDONLY");
    FAIL() << "open of a missing path succeeded";
  } catch (const mpaio::SystemError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(e.call(), "open(path=/nonexistent/mpaio-test, flags=O_RDONLY)");
    EXPECT_NE(what.find("open("), std::string::npos) << what;
    EXPECT_NE(what.find("path=/nonexistent/mpaio-test"), std::string::npos) << what;
    EXPECT_NE(what.find("flags=O_RDONLY"), std::string::npos) << what;
    EXPECT_NE(what.find(std::strerror(ENOENT)), std::string::npos) << what;
  }
}

TEST(Syscall, RealFailureOfABadDescriptor) {
  try {
    (void)sys("fcntl", [] { return ::fcntl(-1, F_GETFD); }, "fd", -1);
    FAIL();
  } catch (const mpaio::SystemError& e) {
    EXPECT_EQ(e.code().value(), EBADF);
    EXPECT_NE(std::string(e.what()).find("fcntl(fd=-1)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::strerror(EBADF)), std::string::npos) << e.what();
  }
}

TEST(Syscall, SystemErrorIsAnMpaioError) {
  EXPECT_THROW((void)sys("fake", [] { return errno = EPERM, -1; }), mpaio::Error);
}

TEST(Syscall, RetriesEintr) {
  int calls = 0;
  const int rc = sys("fake", [&] {
    if (++calls <= 3) {
      errno = EINTR;
      return -1;
    }
    return 5;
  });
  EXPECT_EQ(rc, 5);
  EXPECT_EQ(calls, 4);
}

TEST(Syscall, DoesNotRetryOtherErrors) {
  int calls = 0;
  try {
    (void)sys("fake", [&] { return ++calls, errno = EAGAIN, -1; }, "attempt", 1);
    FAIL();
  } catch (const mpaio::SystemError& e) {
    EXPECT_EQ(e.code().value(), EAGAIN);
    EXPECT_EQ(e.call(), "fake(attempt=1)");
  }
  EXPECT_EQ(calls, 1);
}

TEST(Syscall, ErrnoResultVariant) {
  int calls = 0;
  EXPECT_NO_THROW(sys_errno_result("fake", [&] { return ++calls == 1 ? EINTR : 0; }));
  EXPECT_EQ(calls, 2);
  try {
    sys_errno_result("posix_fallocate", [] { return ENOSPC; }, "size", 10);
    FAIL();
  } catch (const mpaio::SystemError& e) {
    EXPECT_EQ(e.code().value(), ENOSPC);
    const std::string what = e.what();
    EXPECT_NE(what.find("posix_fallocate(size=10)"), std::string::npos) << what;
    EXPECT_NE(what.find(std::strerror(ENOSPC)), std::string::npos) << what;
  }
}

TEST(Syscall, SystemErrorDetailIsAppended) {
  const mpaio::SystemError e("call(x=1)", EIO, "some context");
  const std::string what = e.what();
  EXPECT_NE(what.find("call(x=1)"), std::string::npos);
  EXPECT_NE(what.find(std::strerror(EIO)), std::string::npos);
  EXPECT_NE(what.find("some context"), std::string::npos);
}

std::atomic<int> alarms{0};
void on_alarm(int) { alarms.fetch_add(1); }

// A real interrupted system call: read() on an empty pipe, interrupted by a signal whose handler is installed
// without SA_RESTART (so the kernel returns EINTR), must be retried until the data arrives.
TEST(Syscall, RetriesARealInterruptedRead) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  mpaio::detail::UniqueFd read_end(fds[0]);
  mpaio::detail::UniqueFd write_end(fds[1]);

  struct sigaction action {};
  struct sigaction old {};
  action.sa_handler = on_alarm;
  action.sa_flags = 0;  // no SA_RESTART
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(::sigaction(SIGALRM, &action, &old), 0);
  alarms = 0;
  itimerval timer{};
  timer.it_value.tv_usec = 20'000;
  timer.it_interval.tv_usec = 20'000;  // keep interrupting until the write
  ASSERT_EQ(::setitimer(ITIMER_REAL, &timer, nullptr), 0);

  std::thread writer([&] {
    // Block SIGALRM here so that it interrupts the reader, not this thread.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    for (int i = 0; i < 200 && alarms.load() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const char byte = 'x';
    (void)::write(write_end.get(), &byte, 1);
  });
  char buffer = 0;
  ssize_t n = -2;
  EXPECT_NO_THROW(n = sys("read", [&] { return ::read(read_end.get(), &buffer, 1); }, "fd", read_end.get()));
  writer.join();

  itimerval off{};
  ::setitimer(ITIMER_REAL, &off, nullptr);
  ::sigaction(SIGALRM, &old, nullptr);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(buffer, 'x');
  EXPECT_GE(alarms.load(), 1) << "the read was never interrupted, so the retry was not exercised";
}

}  // namespace
