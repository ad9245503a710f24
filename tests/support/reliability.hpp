#pragma once
// Test helpers for the reliability tests (namespace mpaio_test::rel) (tests/process/test_reliability_*.cpp):
//
// - ReliabilityTest: a fixture with a Watchdog (support/watchdog.hpp) on every test, and checks after each
//   test that no child process of the test (live or zombie) and no /dev/shm/mpaio-<this pid>-* entry is left.
// - Board: a named SharedArray of int64 "cells" that scripts what SumWorker::process does in the worker
//   processes (compute, wait, crash in a chosen way, throw, hang...) and where the workers write back what
//   they did (pid, start time, attempts). Its metadata reaches the workers as SumWorker's parameters (the
//   board of the moment the worker is made); a worker attaches it once (a thread of a thread pool too),
//   read-write, with SharedArray::attach.
// - SumWorker: sums int64 chunks (of iota 1..N), following the board's script first.
// - Checks shared by the tests: the sums of a run, every chunk of a run accounted for once (delivered,
//   failed or unfinished), a message naming its chunk, a worker replaced after it died, a failure's
//   exception type.
// - Running: run_outcome (run_blocking), run_on_loop (an io_context of the test's, with an optional
//   cancellation), and DeathWatcher, which notes when processes end.
// The /proc helpers (processes, waiting for them to end, the subreaper) are in support/proc.hpp.
//
// The test suites are named reliability_<Theme>, so that `ctest -R reliability` selects them: ctest knows
// the tests by their GoogleTest names (gtest_discover_tests), not by their program's name.
//
// Timing figures are printed as "[timing] <what>: <ms> ms" lines and recorded as test properties.

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "mpaio/detail/unique_fd.hpp"
#include "mpaio/mpaio.hpp"
#include "support/poll.hpp"
#include "support/proc.hpp"
#include "support/watchdog.hpp"

// In their own namespace, so that they never collide with the other helpers of mpaio_test; those of
// support/proc.hpp and support/poll.hpp are found from here as members of the enclosing namespace.
namespace mpaio_test::rel {

// ---- time ----------------------------------------------------------------------------------------------------

/// CLOCK_MONOTONIC in ns: the clock the workers use too (and std::chrono::steady_clock on Linux).
inline std::int64_t now_ns() noexcept { return mpaio::detail::monotonic_ns(); }
inline double ms_between(std::int64_t from_ns, std::int64_t to_ns) noexcept {
  return static_cast<double>(to_ns - from_ns) / 1e6;
}

/// Prints and records one timing figure of a test.
inline void record_timing(const std::string& what, double ms) {
  std::printf("[timing] %s: %.1f ms\n", what.c_str(), ms);
  std::fflush(stdout);
  std::string key = what;
  for (char& c : key) {
    if (c == ' ' || c == ',' || c == '(' || c == ')') c = '_';
  }
  ::testing::Test::RecordProperty(key, std::to_string(ms));
}

// ---- the fixture ---------------------------------------------------------------------------------------------

/// Every reliability test: a watchdog, then checks that nothing is left behind.
class ReliabilityTest : public ::testing::Test {
 protected:
  explicit ReliabilityTest(std::chrono::seconds limit = std::chrono::seconds(90)) : watchdog_(limit) {}

  void TearDown() override {
    // The pool reaps its fork server in its destructor and the tests reap what they fork, so every child
    // should be gone at once; a short grace covers a child the kernel is still tearing down.
    std::vector<pid_t> kids;
    poll_until(
        [&] {
          kids = children_of(::getpid());
          return kids.empty();
        },
        std::chrono::milliseconds(2000));
    EXPECT_TRUE(kids.empty()) << "child processes left by the test (live or zombie): " << describe_pids(kids);
    for (pid_t p : kids) {  // clean up so that later tests start clean
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
    const auto segments = shm_entries_of(::getpid());
    EXPECT_TRUE(segments.empty()) << "named segments left in /dev/shm: " << ::testing::PrintToString(segments);
  }

  Watchdog watchdog_;
};

// ---- the board -----------------------------------------------------------------------------------------------

/// What a chunk does before (or instead of) summing its elements.
enum Action : std::int64_t {
  use_default = 0,  ///< the board's default action
  compute = 1,      ///< just sum
  wait = 2,         ///< wait (sleeping) until the board's release cell is set, then sum
  segv = 3,         ///< write through a null pointer
  abort_ = 4,       ///< std::abort()
  exit42 = 5,       ///< _exit(42)
  kill_self = 6,    ///< SIGKILL itself
  throw_runtime = 7,    ///< throw std::runtime_error
  throw_custom = 8,     ///< throw a std::exception subclass
  throw_non_std = 9,    ///< throw something not derived from std::exception
  hang = 10,            ///< never finish (sleeps until killed); notes SIGTERM (Cell::sigterm_ns), dies of it
  hang_ignore_term = 11,  ///< never finish; SIGTERM is noted (Cell::sigterm_ns) and otherwise ignored
  /// Added to an action: do it on the chunk's first attempt only, compute on later attempts.
  first_attempt_only = 100,
};

/// The cells of the board.
enum Cell : std::size_t {
  default_action = 0,
  chunk_size = 1,  ///< chunk i is the one with start / chunk_size == i
  release = 2,     ///< set to let `wait` chunks go on
  started = 3,     ///< chunk attempts started, in all
  running = 4,     ///< chunk attempts running now
  death_ns = 5,    ///< when a chunk last killed its own worker (just before)
  malloc_bytes = 6,  ///< a chunk allocates and fills this many bytes before summing (exercises malloc)
  sigterm_ns = 7,    ///< when a hung chunk's worker first received SIGTERM (from its signal handler)
  per_chunk = 64,  ///< then, per chunk: action, attempts, pid of the last attempt, start time of it
};
inline constexpr std::size_t kChunkCells = 4;
inline constexpr std::size_t kMaxChunks = 4096;

/// The current board's metadata as JSON, in the test's process: SumWorker sends it to its chunks.
inline std::string g_board_json;  // NOLINT

inline std::int64_t load(const std::int64_t& cell) noexcept { return __atomic_load_n(&cell, __ATOMIC_SEQ_CST); }
inline void store(std::int64_t& cell, std::int64_t v) noexcept { __atomic_store_n(&cell, v, __ATOMIC_SEQ_CST); }
inline std::int64_t fetch_add(std::int64_t& cell, std::int64_t v) noexcept {
  return __atomic_fetch_add(&cell, v, __ATOMIC_SEQ_CST);
}

/// The test's side: creates the board and publishes its name to the SumWorkers made while it lives.
class Board {
 public:
  explicit Board(std::size_t chunk_size_elements)
      : cells_(mpaio::SharedArray<std::int64_t>::create({Cell::per_chunk + kMaxChunks * kChunkCells},
                                                        {.kind = mpaio::SegmentKind::named})),
        chunk_size_(static_cast<std::int64_t>(chunk_size_elements)) {
    g_board_json = cells_.meta().to_json();
    store(cells_[Cell::default_action], Action::compute);
    store(cells_[Cell::chunk_size], static_cast<std::int64_t>(chunk_size_elements));
  }
  ~Board() { g_board_json.clear(); }
  Board(const Board&) = delete;
  Board& operator=(const Board&) = delete;

  /// The board's array (its segment is named: a process that dies with it leaves it in /dev/shm).
  [[nodiscard]] const mpaio::ArrayMeta& meta() const noexcept { return cells_.meta(); }
  std::int64_t& cell(std::size_t i) noexcept { return cells_[i]; }
  std::int64_t get(std::size_t i) noexcept { return load(cells_[i]); }
  void set(std::size_t i, std::int64_t v) noexcept { store(cells_[i], v); }

  void set_action(std::size_t chunk, std::int64_t action) { set(chunk_cell(chunk, 0), action); }
  std::int64_t attempts(std::size_t chunk) { return get(chunk_cell(chunk, 1)); }
  pid_t pid_of(std::size_t chunk) { return static_cast<pid_t>(get(chunk_cell(chunk, 2))); }
  std::int64_t start_ns_of(std::size_t chunk) { return get(chunk_cell(chunk, 3)); }

  /// Forgets what the workers wrote and every per-chunk action (the default action becomes compute).
  void reset() {
    for (std::size_t i = 0; i < cells_.size(); ++i) store(cells_[i], 0);
    set(Cell::default_action, Action::compute);
    set(Cell::chunk_size, chunk_size_);
  }

  /// Waits until chunk `chunk` has started (its pid is written); returns the pid, or -1 after `limit`.
  pid_t wait_started(std::size_t chunk, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    pid_t pid = -1;
    poll_until(
        [&] {
          const pid_t p = pid_of(chunk);
          if (p > 0) pid = p;
          return p > 0;
        },
        limit, std::chrono::microseconds(100));
    return pid;
  }

  static std::size_t chunk_cell(std::size_t chunk, std::size_t field) {
    if (chunk >= kMaxChunks) throw std::out_of_range("Board: too many chunks");
    return Cell::per_chunk + chunk * kChunkCells + field;
  }

 private:
  mpaio::SharedArray<std::int64_t> cells_;
  std::int64_t chunk_size_;
};

/// The worker's side: the cells of the board `board_json` names, attached once per process, or per thread
/// of a thread pool (so that its threads need no lock); nullptr when there is no board.
inline std::int64_t* worker_board(const std::string& board_json) {
  thread_local pid_t attached_in = 0;
  thread_local std::string attached_json;
  thread_local std::optional<mpaio::SharedArray<std::int64_t>> board;
  if (board_json.empty()) return nullptr;
  if (attached_in != ::getpid() || attached_json != board_json) {
    board.reset();
    board.emplace(mpaio::SharedArray<std::int64_t>::attach(mpaio::ArrayMeta::from_json(board_json),
                                                            mpaio::Access::read_write));
    attached_in = ::getpid();
    attached_json = board_json;
  }
  return board->data();
}

/// A std::exception subclass of the tests.
struct CustomFailure : std::exception {
  [[nodiscard]] const char* what() const noexcept override { return "custom failure in chunk"; }
};
/// Something thrown that is not a std::exception.
struct NotStdError {
  int code = 7;
};

/// A write through a null pointer the compiler cannot see (no trap instruction instead, no sanitizer
/// report first): the worker dies of SIGSEGV.
__attribute__((noinline, no_sanitize("address", "undefined"))) inline void write_through_null() {
  static volatile std::uintptr_t zero = 0;
  *reinterpret_cast<volatile int*>(zero) = 42;
}

/// The cell where the SIGTERM handlers of hung chunks note the time (set before they are installed).
inline std::int64_t* g_sigterm_cell = nullptr;  // NOLINT

/// Notes the first SIGTERM's arrival; async-signal-safe (clock_gettime and an atomic store).
inline void note_sigterm() noexcept {
  std::int64_t unset = 0;
  if (g_sigterm_cell != nullptr) {
    __atomic_compare_exchange_n(g_sigterm_cell, &unset, now_ns(), false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  }
}
/// `hang`: note SIGTERM, then die of it (it is blocked in its own handler, so it lands on return).
inline void note_sigterm_and_die(int) noexcept {
  note_sigterm();
  ::signal(SIGTERM, SIG_DFL);
  ::raise(SIGTERM);
}
/// `hang_ignore_term`: note SIGTERM and go on, so that only SIGKILL ends the worker.
inline void note_sigterm_and_go_on(int) noexcept { note_sigterm(); }

/// Sleeps until `cell` is non-zero or `limit` passes (then returns false).
inline bool sleep_until_set(const std::int64_t& cell, std::chrono::seconds limit) {
  const std::int64_t deadline = now_ns() + std::chrono::nanoseconds(limit).count();
  while (load(cell) == 0) {
    if (now_ns() > deadline) return false;
    ::usleep(200);
  }
  return true;
}

/// Runs in the worker before a chunk is summed: does what the board says for it.
inline void follow_script(mpaio::Range chunk, const std::string& board_json) {
  // Before the board is attached: the start must not lag the pool's own start of the chunk, which is
  // what its timeout counts from.
  const std::int64_t entered = now_ns();
  std::int64_t* b = worker_board(board_json);
  if (b == nullptr) return;
  const std::int64_t size = load(b[Cell::chunk_size]);
  const std::size_t index = size > 0 ? chunk.start / static_cast<std::size_t>(size) : 0;
  std::int64_t* c = b + Board::chunk_cell(index, 0);
  std::int64_t action = load(c[0]);
  if (action == Action::use_default) action = load(b[Cell::default_action]);
  const std::int64_t attempt = fetch_add(c[1], 1);
  store(c[3], entered);
  store(c[2], ::getpid());
  fetch_add(b[Cell::started], 1);
  fetch_add(b[Cell::running], 1);
  struct Leave {
    std::int64_t& running;
    ~Leave() { fetch_add(running, -1); }
  } leave{b[Cell::running]};
  if (action >= Action::first_attempt_only) action = attempt == 0 ? action - Action::first_attempt_only : Action::compute;
  if (const std::int64_t bytes = load(b[Cell::malloc_bytes]); bytes > 0) {
    std::vector<char> scratch(static_cast<std::size_t>(bytes), 'x');
    std::string text(scratch.begin(), scratch.end());
    if (text.size() != scratch.size()) throw std::logic_error("allocation went wrong");
  }
  switch (action) {
    case Action::wait:
      if (!sleep_until_set(b[Cell::release], std::chrono::seconds(30))) throw std::runtime_error("never released");
      return;
    case Action::segv: store(b[Cell::death_ns], now_ns()); write_through_null(); ::_exit(99);
    case Action::abort_: store(b[Cell::death_ns], now_ns()); std::abort();
    case Action::exit42: store(b[Cell::death_ns], now_ns()); ::_exit(42);
    case Action::kill_self:
      store(b[Cell::death_ns], now_ns());
      ::kill(::getpid(), SIGKILL);
      for (;;) ::pause();
    case Action::throw_runtime: throw std::runtime_error("runtime failure in chunk " + std::to_string(index));
    case Action::throw_custom: throw CustomFailure();
    case Action::throw_non_std: throw NotStdError{};
    case Action::hang:
    case Action::hang_ignore_term: {
      g_sigterm_cell = &b[Cell::sigterm_ns];
      struct sigaction on_term {};
      on_term.sa_handler = action == Action::hang ? note_sigterm_and_die : note_sigterm_and_go_on;
      sigemptyset(&on_term.sa_mask);
      ::sigaction(SIGTERM, &on_term, nullptr);
      static const std::int64_t never = 0;
      (void)sleep_until_set(never, std::chrono::seconds(60));
      throw std::runtime_error("hung chunk was not stopped within 60 s");
    }
    default: return;
  }
}

/// Sums chunks of an int64 array after following the board's script; keeps every result by chunk start.
struct SumWorker : mpaio::Worker<SumWorker, std::int64_t> {
  /// The board's metadata (JSON), empty for none.
  using Params = std::string;
  /// A worker that follows the current board's script.
  explicit SumWorker(mpaio::DataIterator chunks) : Worker(std::move(chunks), g_board_json) {}
  static std::int64_t process(mpaio::ArrayView<const std::int64_t> data, mpaio::Range chunk, const Params& board) {
    follow_script(chunk, board);
    std::int64_t sum = 0;
    for (std::int64_t v : data.slice(chunk)) sum += v;
    return sum;
  }
  void process_callback(std::int64_t sum, mpaio::Range chunk) {
    ++deliveries;
    sums[chunk.start] = sum;
  }
  std::map<std::size_t, std::int64_t> sums;  ///< by chunk start
  std::size_t deliveries = 0;
};

/// An int64 array holding 1..n.
inline mpaio::SharedArray<std::int64_t> iota_array(std::size_t n, mpaio::SegmentOptions options = {}) {
  auto a = mpaio::SharedArray<std::int64_t>::create({n}, options);
  std::iota(a.begin(), a.end(), std::int64_t{1});
  return a;
}

/// The sum of the elements [start, end) of 1..n.
inline std::int64_t expected_sum(mpaio::Range r) {
  const auto s = static_cast<std::int64_t>(r.start);
  const auto e = static_cast<std::int64_t>(r.end);
  return (e * (e + 1) - s * (s + 1)) / 2;
}

/// Expects a correct sum for every chunk of `worker` but those in `skip` (by chunk index), and no result for
/// those in `skip`.
inline void expect_sums(const SumWorker& worker, const std::set<std::size_t>& skip = {}) {
  const auto& chunks = worker.chunks();
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const mpaio::Range r = chunks[i];
    const auto it = worker.sums.find(r.start);
    if (skip.count(i) != 0) {
      EXPECT_TRUE(it == worker.sums.end()) << "chunk " << i << " " << r << " failed but has a result";
      continue;
    }
    if (it == worker.sums.end()) {
      if (++wrong <= 5) ADD_FAILURE() << "chunk " << i << " " << r << ": no result";
    } else if (it->second != expected_sum(r)) {
      if (++wrong <= 5) ADD_FAILURE() << "chunk " << i << " " << r << ": sum " << it->second << ", expected " << expected_sum(r);
    }
  }
  EXPECT_EQ(wrong, 0U);
  EXPECT_EQ(worker.sums.size(), chunks.size() - skip.size());
}

/// A case of a parameterised test with a name, shown in the test's name (case_name) and in messages.
struct NamedCase {
  const char* name;
};
inline std::ostream& operator<<(std::ostream& os, const NamedCase& c) { return os << c.name; }
/// The test-name suffix of a NamedCase: its name.
template <class Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

/// Expects an error message to name the worker type, the chunk ("chunk [start, end)") and the worker's pid,
/// and, when given, its slot ("worker <slot> (pid <pid>)").
inline void expect_names_chunk(const std::string& what, const mpaio::WorkerBase& worker, mpaio::Range chunk,
                               pid_t pid, std::optional<std::uint32_t> slot = std::nullopt) {
  EXPECT_NE(what.find(worker.type_name()), std::string::npos) << what;
  EXPECT_NE(what.find("chunk [" + std::to_string(chunk.start) + ", " + std::to_string(chunk.end) + ")"),
            std::string::npos) << what;
  EXPECT_NE(what.find("pid " + std::to_string(pid)), std::string::npos) << what;
  if (slot) {
    EXPECT_NE(what.find("worker " + std::to_string(*slot) + " (pid " + std::to_string(pid) + ")"), std::string::npos)
        << what;
  }
}

/// Expects the worker `dead`, which ran in `slot` (one of `workers_before`, the pool's workers before the
/// run), to be gone, and the slot to hold a new, live process (replacements start asynchronously: it is
/// waited for, at most 10 s).
inline void expect_worker_replaced(const mpaio::ProcessPoolExecutor& pool, const std::vector<pid_t>& workers_before,
                                   std::size_t slot, pid_t dead) {
  ASSERT_LT(slot, pool.concurrency());
  EXPECT_EQ(workers_before.at(slot), dead) << "the failure names another slot's worker";
  EXPECT_TRUE(process_gone(dead)) << "worker " << dead << " is still running";
  pid_t replacement = dead;
  EXPECT_TRUE(poll_until([&] { return (replacement = pool.worker_pid(slot)) != dead; }, std::chrono::seconds(10)))
      << "the worker was not replaced";
  EXPECT_FALSE(process_gone(replacement)) << "the replacement is not running";
}

/// Expects a failure listed by a collect-mode run to hold an E about its own chunk.
template <class E>
void expect_failure_is(const mpaio::FailedChunk& failure) {
  try {
    std::rethrow_exception(failure.error);
  } catch (const E& e) {
    EXPECT_EQ(e.range(), failure.range);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "the failure of chunk " << failure.range << " is not a " << typeid(E).name() << ": " << e.what();
  } catch (...) {
    ADD_FAILURE() << "the failure of chunk " << failure.range << " is not a std::exception";
  }
}

/// The outcome of a run: its report or its exception, and when it completed.
struct RunOutcome {
  std::optional<mpaio::RunReport> report;
  std::exception_ptr error;
  std::int64_t end_ns = 0;

  /// The error as E, or nullptr (then the test fails, saying what happened instead).
  template <class E>
  const E* error_as() const {
    if (!error) {
      ADD_FAILURE() << "the run succeeded; expected " << typeid(E).name();
      return nullptr;
    }
    try {
      std::rethrow_exception(error);
    } catch (const E& e) {
      return &e;  // rethrow_exception throws the stored object itself, which `error` keeps alive
    } catch (const std::exception& e) {
      ADD_FAILURE() << "expected " << typeid(E).name() << ", got " << typeid(e).name() << ": " << e.what();
    } catch (...) {
      ADD_FAILURE() << "expected " << typeid(E).name() << ", got a non-std exception";
    }
    return nullptr;
  }
  /// what() of the error, or "" when the run succeeded.
  [[nodiscard]] std::string what() const {
    if (!error) return {};
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "non-std exception";
    }
  }
};

/// Runs the orchestrator to completion (run_blocking) and keeps its outcome.
inline RunOutcome run_outcome(mpaio::WorkerOrchestrator& orchestrator) {
  RunOutcome out;
  try {
    out.report = orchestrator.run_blocking();
  } catch (...) {
    out.error = std::current_exception();
  }
  out.end_ns = now_ns();
  return out;
}

/// Polls `acted` on the timer's loop every millisecond, never blocking the loop, until it returns true
/// (it has done what it waited to do, or there is nothing left to wait for).
inline void poll_on_loop(asio::steady_timer& timer, std::function<bool()> acted) {
  if (acted()) return;
  timer.expires_after(std::chrono::milliseconds(1));
  timer.async_wait([&timer, acted = std::move(acted)](const std::error_code& ec) mutable {
    if (!ec) poll_on_loop(timer, std::move(acted));
  });
}

/// Runs the orchestrator on an io_context of the test's; with `cancel_after`, cancels the run (terminal
/// cancellation) once that has passed, unless it is over by then.
inline RunOutcome run_on_loop(mpaio::WorkerOrchestrator& orchestrator,
                              std::optional<std::chrono::microseconds> cancel_after = std::nullopt) {
  asio::io_context io;
  asio::cancellation_signal cancel;
  asio::steady_timer timer(io);
  RunOutcome out;
  bool done = false;
  asio::co_spawn(io, orchestrator.run(),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, mpaio::RunReport report) {
                   done = true;
                   out.end_ns = now_ns();
                   if (e) {
                     out.error = e;
                   } else {
                     out.report = std::move(report);
                   }
                   timer.cancel();
                 }));
  if (cancel_after) {
    timer.expires_after(*cancel_after);
    timer.async_wait([&](const std::error_code& ec) {
      if (!ec && !done) cancel.emit(asio::cancellation_type::terminal);
    });
  }
  io.run();
  return out;
}

/// Notes when each of a set of processes ends, from a thread that polls their pidfds: the time it saw the
/// end, an upper bound on the death that is late only by the thread's wake-up. The pidfds are opened by
/// the constructor, so a pid reused later is never mistaken for the process watched.
class DeathWatcher {
 public:
  explicit DeathWatcher(const std::vector<pid_t>& pids) : count_(pids.size()), entries_(new Entry[pids.size()]) {
    for (std::size_t i = 0; i < count_; ++i) {
      entries_[i].pid = pids[i];
      entries_[i].pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pids[i], 0)));
    }
    thread_ = std::thread([this] { watch(); });
  }
  ~DeathWatcher() {
    ::eventfd_write(stop_.get(), 1);
    thread_.join();
  }
  DeathWatcher(const DeathWatcher&) = delete;
  DeathWatcher& operator=(const DeathWatcher&) = delete;

  /// When the end of `pid` was seen (monotonic ns, like now_ns), or 0 when it was not (yet).
  [[nodiscard]] std::int64_t seen_ns(pid_t pid) const {
    for (std::size_t i = 0; i < count_; ++i) {
      if (entries_[i].pid == pid) return entries_[i].seen_ns.load();
    }
    ADD_FAILURE() << "DeathWatcher: pid " << pid << " is not watched";
    return 0;
  }

 private:
  struct Entry {
    pid_t pid = 0;
    mpaio::detail::UniqueFd pidfd;
    std::atomic<std::int64_t> seen_ns{0};
  };

  void watch() {
    for (;;) {
      std::vector<pollfd> fds{{stop_.get(), POLLIN, 0}};
      std::vector<std::size_t> index;
      for (std::size_t i = 0; i < count_; ++i) {
        if (entries_[i].pidfd && entries_[i].seen_ns.load() == 0) {
          fds.push_back({entries_[i].pidfd.get(), POLLIN, 0});
          index.push_back(i);
        }
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;  // EINTR
      const std::int64_t now = now_ns();
      for (std::size_t k = 1; k < fds.size(); ++k) {
        if (fds[k].revents != 0) entries_[index[k - 1]].seen_ns.store(now);
      }
      if (fds[0].revents != 0) return;
    }
  }

  std::size_t count_;
  std::unique_ptr<Entry[]> entries_;
  mpaio::detail::UniqueFd stop_{::eventfd(0, EFD_CLOEXEC)};  // the destructor's request to the thread
  std::thread thread_;
};

/// Expects a run of `worker` to account for each of its chunks exactly once, whatever the outcome:
/// delivered to the callback (once, with the right sum), listed in `report.failures`, or counted in
/// `report.unfinished`; the report's successful records are exactly the delivered chunks. Returns the
/// indices of the failed chunks.
inline std::set<std::size_t> expect_accounted(const SumWorker& worker, const mpaio::RunReport& report) {
  const auto& chunks = worker.chunks();
  std::map<std::size_t, std::size_t> index_of;  // chunk start -> index
  for (std::size_t i = 0; i < chunks.size(); ++i) index_of[chunks[i].start] = i;
  EXPECT_EQ(worker.deliveries, worker.sums.size()) << "a chunk was delivered more than once";
  for (const auto& [start, sum] : worker.sums) {
    const auto it = index_of.find(start);
    if (it == index_of.end()) {
      ADD_FAILURE() << "a result for a chunk at " << start << ", which is not a chunk of the run";
      continue;
    }
    EXPECT_EQ(sum, expected_sum(chunks[it->second])) << "chunk " << chunks[it->second];
  }
  std::set<std::size_t> failed;
  for (const auto& f : report.failures) {
    const auto it = index_of.find(f.range.start);
    if (it == index_of.end() || chunks[it->second] != f.range) {
      ADD_FAILURE() << "a failure for " << f.range << ", which is not a chunk of the run";
      continue;
    }
    EXPECT_TRUE(failed.insert(it->second).second) << "chunk " << f.range << " is listed as failed twice";
    EXPECT_EQ(worker.sums.count(f.range.start), 0U) << "chunk " << f.range << " failed and was delivered";
  }
  std::map<std::size_t, std::size_t> ok_records;  // chunk start -> successful records
  for (const auto& c : report.chunks) {
    if (!c.failed) ++ok_records[c.range.start];
  }
  for (const auto& [start, n] : ok_records) {
    EXPECT_EQ(n, 1U) << "chunk at " << start << ": " << n << " successful records";
    EXPECT_EQ(worker.sums.count(start), 1U) << "chunk at " << start << " succeeded but was not delivered";
  }
  EXPECT_EQ(ok_records.size(), worker.sums.size()) << "a delivered chunk has no successful record";
  EXPECT_EQ(worker.sums.size() + report.failures.size() + report.unfinished, chunks.size())
      << worker.sums.size() << " delivered + " << report.failures.size() << " failed + " << report.unfinished
      << " unfinished";
  return failed;
}

/// The pid of the live process in `slot` (a slot whose worker is being replaced names the dead one for a
/// moment: replacements are asynchronous), waiting for it at most 10 s.
inline pid_t live_worker_pid(const mpaio::ProcessPoolExecutor& pool, std::size_t slot) {
  pid_t pid = 0;
  EXPECT_TRUE(poll_until([&] { return !process_gone(pid = pool.worker_pid(slot)); }, std::chrono::seconds(10)))
      << "slot " << slot << " has no live worker";
  return pid;
}

/// The pids of every worker of the pool.
inline std::vector<pid_t> worker_pids(const mpaio::ProcessPoolExecutor& pool) {
  std::vector<pid_t> out;
  for (std::size_t i = 0; i < pool.concurrency(); ++i) out.push_back(live_worker_pid(pool, i));
  return out;
}

/// Runs a fresh SumWorker over `ints` in chunks of `chunk` on `executor` and expects every sum right.
inline void expect_healthy_run(mpaio::Executor& executor, const mpaio::SharedArray<std::int64_t>& ints,
                               std::size_t chunk) {
  SumWorker again{mpaio::DataIterator::chunks(ints.meta(), chunk)};
  mpaio::WorkerOrchestrator orchestrator{executor, {&again}};
  const RunOutcome out = run_outcome(orchestrator);
  ASSERT_FALSE(out.error) << "the run after the failure failed: " << out.what();
  expect_sums(again);
}

/// What the scripted tests start from, made in the order that matters: the board (the workers inherit its
/// name, so it comes before the pool), a pool of `workers` processes, the array 1..size, and the pool's
/// worker pids as the test found them. Unpack it: `auto& [board, pool, ints, before] = scripted;`.
struct ScriptedPool {
  ScriptedPool(std::size_t size, std::size_t chunk, std::size_t workers)
      : board(chunk), pool({.workers = workers}), ints(iota_array(size)), workers_at_start(worker_pids(pool)) {}
  Board board;
  mpaio::ProcessPoolExecutor pool;
  mpaio::SharedArray<std::int64_t> ints;
  std::vector<pid_t> workers_at_start;
};

}  // namespace mpaio_test::rel
