// ProcessPoolExecutor as a resource owner: construction validates its options; destruction stops and
// reaps every process it started (no child, no zombie, no descriptor left over, fork server and workers
// gone); workers ignore SIGINT and die with the caller. Every test runs under a Watchdog.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "../../examples/seed_workers.hpp"
#include "mpaio/mpaio.hpp"
#include "support/child_process.hpp"
#include "support/engine.hpp"
#include "support/proc.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::DataIterator;
using mpaio::ProcessPoolExecutor;
using mpaio::SharedArray;
using mpaio::WorkerOrchestrator;
using mpaio_test::wait_gone;
using mpaio_test::process_state;

/// This process's open descriptors and what they point to.
std::map<int, std::string> open_fds() {
  std::map<int, std::string> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd == own) continue;
    char target[512] = {};
    const std::string link = std::string("/proc/self/fd/") + entry->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    fds[fd] = n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "?";
  }
  ::closedir(dir);
  return fds;
}

std::string describe(const std::map<int, std::string>& fds) {
  std::string out;
  for (const auto& [fd, target] : fds) out += std::to_string(fd) + " -> " + target + "\n";
  return out;
}

SharedArray<std::int64_t> make_ints(std::size_t n) {
  auto ints = SharedArray<std::int64_t>::create({n});
  std::iota(ints.begin(), ints.end(), 1);
  return ints;
}

void run_sum(ProcessPoolExecutor& pool, const SharedArray<std::int64_t>& ints, std::size_t chunks) {
  AddIntWorker adder{DataIterator::partitions(ints.meta(), chunks)};
  WorkerOrchestrator orchestrator{pool, {&adder}};
  (void)orchestrator.run_blocking();
  const auto n = static_cast<std::int64_t>(ints.size());
  EXPECT_EQ(adder.total, n * (n + 1) / 2);
}

TEST(ProcessPoolLifetime, DestructionLeavesNoChildNoZombieAndNoDescriptor) {
  mpaio_test::Watchdog watchdog(60);
  auto ints = make_ints(100'000);  // segments of the test itself, before the snapshot
  const std::vector<pid_t> children_before = mpaio_test::children_of(::getpid());
  const auto fds_before = open_fds();
  std::vector<pid_t> pids;
  {
    ProcessPoolExecutor pool{{.workers = 3}};
    pids.push_back(pool.fork_server_pid());
    for (std::size_t i = 0; i < 3; ++i) pids.push_back(pool.worker_pid(i));
    EXPECT_EQ(mpaio_test::children_of(::getpid()).size(), children_before.size() + 1)
        << "the fork server is the only direct child; workers are its children";
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(mpaio_test::parent_of(pool.worker_pid(i)), pool.fork_server_pid());
    run_sum(pool, ints, 30);
  }
  EXPECT_EQ(mpaio_test::children_of(::getpid()), children_before) << "a child (or zombie) is left over";
  const auto fds_after = open_fds();
  EXPECT_EQ(fds_after.size(), fds_before.size()) << "before:\n" << describe(fds_before) << "after:\n" << describe(fds_after);
  for (pid_t pid : pids) {
    errno = 0;
    EXPECT_EQ(::kill(pid, 0), -1) << "pid " << pid << " still exists (state " << process_state(pid) << ")";
    EXPECT_EQ(errno, ESRCH) << "pid " << pid;
  }
}

TEST(ProcessPoolLifetime, DestructionAfterACrashLeavesNothingEither) {
  mpaio_test::Watchdog watchdog(60);
  auto ints = make_ints(1000);
  const std::vector<pid_t> children_before = mpaio_test::children_of(::getpid());
  const auto fds_before = open_fds();
  std::vector<pid_t> pids;
  {
    ProcessPoolExecutor pool{{.workers = 2}};
    pids.push_back(pool.fork_server_pid());
    pids.push_back(pool.worker_pid(0));
    ASSERT_EQ(::kill(pool.worker_pid(0), SIGKILL), 0);
    ASSERT_TRUE(wait_gone({pids.back()}).empty());
    run_sum(pool, ints, 8);  // starts the dead worker's replacement
    const pid_t dead = pids.back();
    EXPECT_TRUE(mpaio_test::poll_until([&] { return pool.worker_pid(0) != dead; }, std::chrono::seconds(10)));
    pids.push_back(pool.worker_pid(0));
    pids.push_back(pool.worker_pid(1));
  }
  EXPECT_EQ(mpaio_test::children_of(::getpid()), children_before);
  EXPECT_EQ(open_fds().size(), fds_before.size()) << "before:\n" << describe(fds_before) << "after:\n" << describe(open_fds());
  for (pid_t pid : pids) {
    errno = 0;
    EXPECT_EQ(::kill(pid, 0), -1) << "pid " << pid;
    EXPECT_EQ(errno, ESRCH) << "pid " << pid;
  }
}

TEST(ProcessPoolLifetime, ManyPoolsInARowLeakNothing) {
  mpaio_test::Watchdog watchdog(120);
  auto ints = make_ints(1000);
  ProcessPoolExecutor{{.workers = 1}};  // a first pool opens what is opened once per program, if anything
  const auto fds_before = open_fds();
  const std::vector<pid_t> children_before = mpaio_test::children_of(::getpid());
  for (int i = 0; i < 10; ++i) {
    ProcessPoolExecutor pool{{.workers = 2}};
    run_sum(pool, ints, 4);
  }
  EXPECT_EQ(open_fds(), fds_before) << "after:\n" << describe(open_fds());
  EXPECT_EQ(mpaio_test::children_of(::getpid()), children_before);
}

TEST(ProcessPoolLifetime, TwoPoolsAtOnceAreIndependent) {
  mpaio_test::Watchdog watchdog(60);
  ProcessPoolExecutor a{{.workers = 2}};
  ProcessPoolExecutor b{{.workers = 2}};
  EXPECT_NE(a.fork_server_pid(), b.fork_server_pid());
  EXPECT_NE(a.worker_pid(0), b.worker_pid(0));
  auto ints = make_ints(10'000);
  run_sum(a, ints, 10);
  run_sum(b, ints, 10);
  run_sum(a, ints, 3);
}

TEST(ProcessPoolOptions, BadOptionsAreRejectedWithoutLeavingProcesses) {
  mpaio_test::Watchdog watchdog(60);
  const std::vector<pid_t> children_before = mpaio_test::children_of(::getpid());
  EXPECT_THROW(ProcessPoolExecutor({.workers = 0}), mpaio::InvalidArgument);
  EXPECT_THROW(ProcessPoolExecutor({.workers = 1, .queue_depth = 0}), mpaio::InvalidArgument);
  EXPECT_THROW(ProcessPoolExecutor({.workers = 1, .queue_depth = 33}), mpaio::InvalidArgument);
  EXPECT_THROW(ProcessPoolExecutor({.workers = 1, .max_result_bytes = 0}), mpaio::InvalidArgument);
  EXPECT_THROW(ProcessPoolExecutor({.workers = 1, .max_result_bytes = (std::size_t{1} << 30) + 1}), mpaio::InvalidArgument);
  EXPECT_EQ(mpaio_test::children_of(::getpid()), children_before);
}

TEST(ProcessPoolOptions, ExtremeButValidOptionsWork) {
  mpaio_test::Watchdog watchdog(60);
  auto ints = make_ints(5000);
  ProcessPoolExecutor shallow{{.workers = 1, .queue_depth = 1, .max_result_bytes = 8}};
  run_sum(shallow, ints, 100);
  ProcessPoolExecutor deep{{.workers = 2, .queue_depth = 32, .worker_spin = std::chrono::microseconds(0)}};
  run_sum(deep, ints, 1000);
}

TEST(ProcessPoolSignals, WorkersAndTheForkServerIgnoreSigint) {
  mpaio_test::Watchdog watchdog(60);
  ProcessPoolExecutor pool{{.workers = 2}};
  auto ints = make_ints(1000);
  run_sum(pool, ints, 4);
  const pid_t w0 = pool.worker_pid(0);
  const pid_t w1 = pool.worker_pid(1);
  const pid_t server = pool.fork_server_pid();
  ASSERT_EQ(::kill(w0, SIGINT), 0);
  ASSERT_EQ(::kill(w1, SIGINT), 0);
  ASSERT_EQ(::kill(server, SIGINT), 0);
  run_sum(pool, ints, 16);  // runs after the signals were delivered (they are queued before kill returns)
  EXPECT_EQ(pool.worker_pid(0), w0);
  EXPECT_EQ(pool.worker_pid(1), w1);
  EXPECT_EQ(::kill(w0, 0), 0);
  EXPECT_EQ(::kill(server, 0), 0);
  // The fork server still answers: a killed worker is replaced.
  ASSERT_EQ(::kill(w0, SIGKILL), 0);
  ASSERT_TRUE(wait_gone({w0}).empty());
  run_sum(pool, ints, 16);
  EXPECT_TRUE(mpaio_test::poll_until([&] { return pool.worker_pid(0) != w0; }, std::chrono::seconds(10)));
}

TEST(ProcessPoolSignals, WorkersDieWithTheCaller) {
  mpaio_test::Watchdog watchdog(60);
  const mpaio_test::Subreaper subreaper;  // the orphaned fork server and workers become ours, to check and reap
  ASSERT_TRUE(subreaper.ok());
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  const auto result = mpaio_test::run_in_child([&] {
    ::close(pipe_fds[0]);
    ProcessPoolExecutor pool{{.workers = 2}};
    auto ints = make_ints(1000);
    AddIntWorker adder{DataIterator::partitions(ints.meta(), 4)};
    WorkerOrchestrator orchestrator{pool, {&adder}};
    (void)orchestrator.run_blocking();
    const pid_t pids[3] = {pool.fork_server_pid(), pool.worker_pid(0), pool.worker_pid(1)};
    if (::write(pipe_fds[1], pids, sizeof pids) != sizeof pids) return 2;
    ::kill(::getpid(), SIGKILL);  // the caller dies without destroying its pool
    return 3;
  });
  ::close(pipe_fds[1]);
  pid_t pids[3] = {};
  const ssize_t n = ::read(pipe_fds[0], pids, sizeof pids);
  ::close(pipe_fds[0]);
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(result.signal, SIGKILL) << result.describe();
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof pids));
  for (pid_t pid : pids) {
    ASSERT_GT(pid, 0);
    EXPECT_TRUE(mpaio_test::reaped_soon(pid)) << "pid " << pid << " outlived its caller (state " << process_state(pid) << ")";
  }
  EXPECT_TRUE(mpaio_test::children_of(::getpid()).empty());
}

}  // namespace
