// The fork server and the supervisor, white-box (this file sees src/process/): children started from registered
// entries, the user's fork hooks around every fork, exit reports with named exit codes and crash backtraces,
// and answers that never get out of step with their requests. Every test runs under a Watchdog.
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "mpaio/error.hpp"
#include "mpaio/fork_hooks.hpp"
#include "process/child_setup.hpp"
#include "process/fork_server.hpp"
#include "process/process_signal.hpp"
#include "process/supervisor.hpp"
#include "support/poll.hpp"
#include "support/proc.hpp"
#include "support/watchdog.hpp"

namespace {

using mpaio::detail::ChildContext;
using mpaio::detail::ChildEntry;
using mpaio::detail::ChildExitReport;
using mpaio::detail::ForkServer;
using mpaio::detail::ForkServerEvent;
using std::chrono::milliseconds;

/// A page of shared memory the children write to (inherited through the fork server).
struct SharedCounters {
  SharedCounters() {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    words = static_cast<std::atomic<std::int64_t>*>(p);
  }
  ~SharedCounters() { ::munmap(words, 4096); }
  std::atomic<std::int64_t>* words = nullptr;
};

/// Waits for the exit report of `seq`, reading events as they come.
ChildExitReport await_exit(ForkServer& server, std::uint64_t seq) {
  ChildExitReport found;
  const bool got = mpaio_test::poll_until(
      [&] {
        for (ForkServerEvent& e : server.read_events()) {
          if (auto* exit = std::get_if<ChildExitReport>(&e); exit != nullptr && exit->seq == seq) {
            found = std::move(*exit);
            return true;
          }
        }
        return false;
      },
      std::chrono::seconds(10));
  EXPECT_TRUE(got) << "no exit report for request " << seq;
  return found;
}

TEST(ForkServer, StartsChildrenOfEachEntryAndReportsHowTheyEnd) {
  constexpr int kParentSeen = 100;
  mpaio_test::Watchdog watchdog(60);
  SharedCounters shared;
  std::vector<ChildEntry> entries(2);
  entries[0].name = "mpaio-a";
  entries[0].main = [words = shared.words](const ChildContext& ctx) {
    words[ctx.slot].store(::getpid());
    // Stays until the test has seen whose child it is: an exited child has no parent to read.
    while (words[kParentSeen].load() == 0) std::this_thread::sleep_for(milliseconds(1));
    return 7;
  };
  entries[1].name = "mpaio-b";
  entries[1].main = [](const ChildContext&) -> int { throw 42; };
  ForkServer server(entries, milliseconds(1000));
  auto a = server.spawn(0, 3, milliseconds(10'000));
  EXPECT_EQ(a.slot, 3u);
  EXPECT_EQ(mpaio_test::parent_of(a.pid), server.pid()) << "children are the fork server's";
  shared.words[kParentSeen].store(1);
  ChildExitReport exit = await_exit(server, a.seq);
  EXPECT_EQ(exit.pid, a.pid);
  EXPECT_EQ(exit.code, 7);
  EXPECT_EQ(exit.signal, 0);
  EXPECT_EQ(shared.words[3].load(), a.pid) << "entry 0 ran in slot 3";
  auto b = server.spawn(1, 0, milliseconds(10'000));
  exit = await_exit(server, b.seq);
  EXPECT_EQ(exit.code, static_cast<int>(mpaio::detail::ChildExit::entry_failed)) << "an entry that throws";
  EXPECT_EQ(mpaio::detail::child_exit_meaning(exit.code), "its entry point threw");
  EXPECT_THROW(server.spawn(5, 0, milliseconds(10'000)), mpaio::SystemError) << "no entry 5";
}

TEST(ForkServer, AChildKeepsOnlyItsDescriptorsAndTheOthersPointAtDevNull) {
  mpaio_test::Watchdog watchdog(60);
  SharedCounters shared;
  int kept[2];
  ASSERT_EQ(::pipe(kept), 0);
  ChildEntry entry;
  entry.keep_fds = {kept[1]};
  entry.main = [words = shared.words, keep = kept[1]](const ChildContext& ctx) {
    // Its socket and the kept pipe are what they were; so is the pipe its crash reporter writes to; every
    // other descriptor above 2 is /dev/null.
    int others = 0, devnull = 0, pipes = 0;
    std::string seen;
    for (const auto& [fd, path] : mpaio_test::open_fds_of(::getpid())) {
      if (fd <= 2 || fd == ctx.socket || fd == keep) continue;
      ++others;
      devnull += path == "/dev/null";
      pipes += path.starts_with("pipe:");
      seen += path + " ";
    }
    words[0] = others;
    words[1] = devnull;
    words[2] = ::write(keep, "k", 1);
    words[3] = pipes;
    seen.copy(reinterpret_cast<char*>(&words[100]), 2000);
    return 0;
  };
  ForkServer server({entry}, milliseconds(1000));
  ::close(kept[1]);
  auto child = server.spawn(0, 0, milliseconds(10'000));
  (void)await_exit(server, child.seq);
  EXPECT_EQ(shared.words[3].load(), 1) << "the crash reporter's pipe";
  EXPECT_EQ(shared.words[0].load(), shared.words[1].load() + 1) << "descriptors not kept are /dev/null: "
                                                                 << reinterpret_cast<const char*>(&shared.words[100]);
  EXPECT_EQ(shared.words[2].load(), 1) << "the kept pipe still works";
  char c = 0;
  EXPECT_EQ(::read(kept[0], &c, 1), 1);
  ::close(kept[0]);
}

/// Writes to a page mapped without access: a SIGSEGV that no sanitizer reports as undefined behaviour first.
__attribute__((noinline)) void crash_here_for_the_test() {
  void* page = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  *static_cast<volatile int*>(page) = 1;
}

TEST(ForkServer, AChildKilledByAFatalSignalIsReportedWithWhereItDied) {
  mpaio_test::Watchdog watchdog(60);
  ChildEntry entry;
  entry.main = [](const ChildContext& ctx) -> int {
    if (ctx.slot == 0) crash_here_for_the_test();
    ::abort();
  };
  ForkServer server({entry}, milliseconds(1000));
  auto segv = server.spawn(0, 0, milliseconds(10'000));
  ChildExitReport exit = await_exit(server, segv.seq);
  EXPECT_EQ(exit.signal, SIGSEGV);
  EXPECT_NE(exit.backtrace.find("crash_here_for_the_test"), std::string::npos) << exit.backtrace;
  auto abrt = server.spawn(0, 1, milliseconds(10'000));
  exit = await_exit(server, abrt.seq);
  EXPECT_EQ(exit.signal, SIGABRT);
  EXPECT_NE(exit.backtrace.find("abort"), std::string::npos) << exit.backtrace;
  // SIGKILL leaves no trace to report.
  ChildEntry sleeper;
  sleeper.main = [](const ChildContext&) {
    ::pause();
    return 0;
  };
  ForkServer second({sleeper}, milliseconds(1000));
  auto slept = second.spawn(0, 0, milliseconds(10'000));
  ASSERT_TRUE(mpaio::detail::signal_process(slept.pidfd.get(), SIGKILL));
  exit = await_exit(second, slept.seq);
  EXPECT_EQ(exit.signal, SIGKILL);
  EXPECT_TRUE(exit.backtrace.empty());
}

// Issue 11 item 6: a spawn that timed out left its late answer in the socket, and an answer named no request,
// so the next spawn took another request's child (its pid, pidfd and socket: two processes on one channel,
// one of them leaked). Answers now echo their request's number: here the fork server is stopped so that a spawn
// times out, then resumed; the late answer's child is killed, and the next spawn gets its own child.
TEST(ForkServer, ALateAnswerIsNeverTakenForTheNextRequestsAndItsChildIsKilled) {
  mpaio_test::Watchdog watchdog(60);
  ChildEntry entry;
  entry.main = [](const ChildContext&) {
    ::pause();
    return 0;
  };
  ForkServer server({entry}, milliseconds(1000));
  ASSERT_EQ(::kill(server.pid(), SIGSTOP), 0);
  try {
    (void)server.spawn(0, 0, milliseconds(200));
    ADD_FAILURE() << "the spawn did not time out";
  } catch (const mpaio::SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("did not answer within 200 ms"), std::string::npos) << e.what();
  }
  ASSERT_EQ(::kill(server.pid(), SIGCONT), 0);
  auto next = server.spawn(0, 1, milliseconds(10'000));
  EXPECT_EQ(next.slot, 1u) << "the answer to this request, not the late one";
  // The late child was killed as its answer arrived: the fork server's only child is the new one.
  EXPECT_TRUE(mpaio_test::poll_until([&] { return mpaio_test::children_of(server.pid()) == std::vector<pid_t>{next.pid}; },
                                     std::chrono::seconds(10)))
      << mpaio_test::describe_pids(mpaio_test::children_of(server.pid()));
  ASSERT_TRUE(mpaio::detail::signal_process(next.pidfd.get(), SIGKILL));
  const ChildExitReport exit = await_exit(server, next.seq);
  EXPECT_EQ(exit.pid, next.pid) << "the exit of the late child is not reported as this one's";
}

TEST(ForkHooks, RunAroundTheForkServersForkAndEachChildsFork) {
  mpaio_test::Watchdog watchdog(60);
  SharedCounters shared;
  static std::atomic<int> prepared{0}, in_parent{0};
  prepared = 0;
  in_parent = 0;
  std::vector<int> order;
  mpaio::ForkHooksRegistration first({[&] { order.push_back(1); ++prepared; }, [] { ++in_parent; },
                                      [words = shared.words] { words[10 + words[9].fetch_add(1)] = ::getpid(); }});
  mpaio::ForkHooksRegistration second({[&] { order.push_back(2); }, {}, {}});
  ChildEntry entry;
  entry.main = [words = shared.words](const ChildContext&) {
    words[1] = ::getpid();
    words[2] = words[9].load();  // how many `child` hooks ran before this entry
    return 0;
  };
  ForkServer server({entry}, milliseconds(1000));
  EXPECT_EQ(prepared.load(), 1) << "prepare ran once, in this process, before the fork server's fork";
  EXPECT_EQ(in_parent.load(), 1);
  EXPECT_EQ((std::vector<int>{2, 1}), order) << "prepare: the latest registration first";
  auto child = server.spawn(0, 0, milliseconds(10'000));
  (void)await_exit(server, child.seq);
  // `child` ran in the fork server (first) and in the child (second, before the entry).
  EXPECT_EQ(shared.words[9].load(), 2);
  EXPECT_EQ(shared.words[10].load(), server.pid());
  EXPECT_EQ(shared.words[11].load(), child.pid);
  EXPECT_EQ(shared.words[2].load(), 2) << "the child hook ran before the entry";
  EXPECT_EQ(prepared.load(), 1) << "the fork server's own forks ran prepare there, not here";
}

TEST(ForkHooks, AreNotRunOnceUnregistered) {
  mpaio_test::Watchdog watchdog(60);
  std::atomic<int> ran{0};
  {
    mpaio::ForkHooksRegistration hooks({[&] { ++ran; }, {}, {}});
  }
  ChildEntry entry;
  entry.main = [](const ChildContext&) { return 0; };
  ForkServer server({entry}, milliseconds(1000));
  EXPECT_EQ(ran.load(), 0);
}

}  // namespace
