// Reliability: the calling process killed with SIGKILL. A forked child creates a board, a
// ProcessPoolExecutor and a named SharedArray, runs once, reports its fork server's and workers' pids and
// its segments' names through a pipe, and is killed, while its workers are idle or while each of them is
// busy in a chunk that never ends: every worker and the fork server are gone within 1 s; the named
// segments it leaves are removed by mpaio::remove_stale_segments(), and by the mpaio-cleanup command (its
// path comes from CMake, MPAIO_CLEANUP_COMMAND; the command also has a ctest of its own,
// reliability.mpaio_cleanup_command).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/reliability.hpp"

namespace {

using namespace mpaio_test;
using namespace mpaio_test::rel;
using namespace std::chrono_literals;

#ifdef MPAIO_CLEANUP_COMMAND
constexpr const char* kCleanup = MPAIO_CLEANUP_COMMAND;
#else
constexpr const char* kCleanup = nullptr;
#endif

constexpr std::size_t kWorkers = 3;

/// What the doomed child reports.
struct Report {
  pid_t fork_server = 0;
  pid_t workers[kWorkers] = {};
  pid_t running[kWorkers] = {};  ///< the workers running a chunk (from the board), when busy
  char segment[128] = {};        ///< the array's
  char board[128] = {};          ///< the board's
};

/// Whether the workers are busy in chunks when the caller is killed.
enum class Workers { idle, busy };

/// Reads exactly `size` bytes from `fd` within `limit`.
bool read_all(int fd, void* data, std::size_t size, std::chrono::milliseconds limit) {
  auto* p = static_cast<char*>(data);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (size > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::read(fd, p, size);
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

class reliability_ParentKilled : public ReliabilityTest {
 protected:
  /// Forks the doomed caller, kills it once it reported (with its workers idle or busy), reaps it; checks
  /// its processes die within 1 s. Returns the names of the segments it left (none on failure).
  std::vector<std::string> kill_a_caller(const std::string& label, Workers workers) {
    EXPECT_TRUE(reaper_.ok());
    int pipe[2];
    if (::pipe2(pipe, O_CLOEXEC) != 0) return {};
    const pid_t child = spawn_child([&] {
      ::close(pipe[0]);
      Board board(100);  // before any SumWorker: it passes the board to its workers as its parameters
      mpaio::ProcessPoolExecutor pool{{.workers = kWorkers}};
      auto array = iota_array(1000, {.kind = mpaio::SegmentKind::named});
      // Run once, so that the workers have mapped the array too.
      SumWorker sums{mpaio::DataIterator::chunks(array.meta(), 100)};
      mpaio::WorkerOrchestrator orchestrator{pool, {&sums}};
      (void)orchestrator.run_blocking();
      Report r;
      r.fork_server = pool.fork_server_pid();
      for (std::size_t i = 0; i < kWorkers; ++i) r.workers[i] = pool.worker_pid(i);
      std::snprintf(r.segment, sizeof r.segment, "%s", array.segment().name().c_str());
      std::snprintf(r.board, sizeof r.board, "%s", board.meta().shm_name.c_str());
      auto report = [&] {
        if (::write(pipe[1], &r, sizeof r) != sizeof r) ::_exit(3);
      };
      if (workers == Workers::idle) {
        report();
        for (;;) ::pause();  // until killed
      }
      // Busy: every chunk runs until it is killed; report once each worker runs one, and go on running.
      board.reset();
      board.set(Cell::default_action, Action::hang);
      SumWorker long_sums{mpaio::DataIterator::chunks(array.meta(), 100)};
      mpaio::WorkerOrchestrator long_run{pool, {&long_sums}};
      asio::io_context io;
      asio::co_spawn(io, long_run.run(), [](std::exception_ptr, mpaio::RunReport) { ::_exit(4); });
      asio::steady_timer poll(io);
      poll_on_loop(poll, [&] {
        if (board.get(Cell::running) != static_cast<std::int64_t>(kWorkers)) return false;
        for (std::size_t i = 0, n = 0; i < long_sums.chunks().size() && n < kWorkers; ++i) {
          if (board.pid_of(i) > 0) r.running[n++] = board.pid_of(i);
        }
        report();
        return true;
      });
      io.run();
      return 5;
    });
    ::close(pipe[1]);
    Report r;
    const bool got = child > 0 && read_all(pipe[0], &r, sizeof r, 30s);
    ::close(pipe[0]);
    if (!got) {
      if (child > 0) {
        ::kill(child, SIGKILL);
        wait_child(child, 10s);
      }
      ADD_FAILURE() << "the child did not report its pool";
      return {};
    }
    std::vector<pid_t> pids{r.fork_server};
    for (pid_t w : r.workers) pids.push_back(w);
    for (pid_t p : pids) EXPECT_FALSE(process_gone(p)) << "pool process " << p << " is not running";
    EXPECT_EQ(comm_of(r.fork_server), "mpaio-forksrv");
    if (workers == Workers::busy) {  // each worker runs a chunk of its own
      std::set<pid_t> running(std::begin(r.running), std::end(r.running));
      EXPECT_EQ(running, std::set<pid_t>(std::begin(r.workers), std::end(r.workers)));
    }

    const std::int64_t killed = now_ns();
    ::kill(child, SIGKILL);
    const auto result = wait_child(child, 10s);
    EXPECT_EQ(result.signal, SIGKILL) << result.describe();
    const auto left = wait_gone(pids, 1000ms);
    const std::int64_t gone = now_ns();
    record_timing("fork server and workers gone after the caller's SIGKILL (" + label + ")", ms_between(killed, gone));
    EXPECT_TRUE(left.empty()) << "still running 1 s after the caller died: " << describe_pids(left);
    // They were reparented to us (the subreaper) and are zombies or gone: reap them.
    poll_until(
        [] {
          while (::waitpid(-1, nullptr, WNOHANG) > 0) {
          }
          return children_of(::getpid()).empty();
        },
        2000ms);

    const std::vector<std::string> names{r.segment, r.board};
    for (const std::string& name : names) {
      EXPECT_EQ(name.rfind("/mpaio-" + std::to_string(child) + "-", 0), 0U) << name;
      EXPECT_TRUE(std::filesystem::exists("/dev/shm" + name)) << "the killed caller's segment should be left behind";
    }
    return names;
  }

  /// Expects remove_stale_segments() to remove every one of `names`, and a second call none of them.
  static void expect_removed_by_remove_stale_segments(const std::vector<std::string>& names) {
    const auto removed = mpaio::remove_stale_segments();
    for (const std::string& name : names) {
      EXPECT_NE(std::find(removed.begin(), removed.end(), name), removed.end())
          << name << "; removed: " << ::testing::PrintToString(removed);
      EXPECT_FALSE(std::filesystem::exists("/dev/shm" + name));
    }
    const auto again = mpaio::remove_stale_segments();
    for (const std::string& name : names) EXPECT_EQ(std::find(again.begin(), again.end(), name), again.end());
  }

  Subreaper reaper_;  // the fork server, orphaned, becomes our child (PID 1 might never reap it)
};

TEST_F(reliability_ParentKilled, WorkersAndForkServerDieWithin1sAndRemoveStaleSegmentsRemovesItsSegment) {
  const auto names = kill_a_caller("idle workers, remove_stale_segments", Workers::idle);
  ASSERT_FALSE(names.empty());
  expect_removed_by_remove_stale_segments(names);
}

TEST_F(reliability_ParentKilled, WhileEveryWorkerRunsALongChunkWorkersAndForkServerDieWithin1s) {
  const auto names = kill_a_caller("busy workers", Workers::busy);
  ASSERT_FALSE(names.empty());
  expect_removed_by_remove_stale_segments(names);
}

TEST_F(reliability_ParentKilled, TheMpaioCleanupCommandRemovesItsSegment) {
  if (kCleanup == nullptr) GTEST_SKIP() << "the path of mpaio-cleanup is not known";
  const auto names = kill_a_caller("idle workers, mpaio-cleanup", Workers::idle);
  ASSERT_FALSE(names.empty());
  const std::string command = std::string(kCleanup) + " 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), p) != nullptr) output += buf.data();
  const int status = ::pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  for (const std::string& name : names) {
    EXPECT_NE(output.find("removed " + name + "\n"), std::string::npos) << output;
    EXPECT_FALSE(std::filesystem::exists("/dev/shm" + name));
  }
  EXPECT_NE(output.find("stale segment(s) removed"), std::string::npos) << output;
}

TEST_F(reliability_ParentKilled, ALiveCallersSegmentIsNeverRemoved) {
  auto mine = iota_array(100, {.kind = mpaio::SegmentKind::named});
  const auto removed = mpaio::remove_stale_segments();
  EXPECT_EQ(std::find(removed.begin(), removed.end(), mine.segment().name()), removed.end());
  EXPECT_TRUE(std::filesystem::exists("/dev/shm" + mine.segment().name()));
}

}  // namespace
