#pragma once
// Test helpers for the engine tests: one factory for the three executors, atomic access to flag
// arrays shared with worker processes, and a bounded spin-wait for `process` functions.

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <thread>

#include "mpaio/executor.hpp"
#include "mpaio/inline_executor.hpp"
#include "mpaio/process_pool_executor.hpp"
#include "mpaio/thread_pool_executor.hpp"
#include "support/poll.hpp"

namespace mpaio_test {

/// The three executors of mpaio.
enum class ExecutorKind { inline_, thread, process };

inline const char* kind_name(ExecutorKind kind) {
  switch (kind) {
    case ExecutorKind::inline_: return "Inline";
    case ExecutorKind::thread: return "Thread";
    case ExecutorKind::process: return "Process";
  }
  return "?";
}

inline void PrintTo(ExecutorKind kind, std::ostream* os) { *os << kind_name(kind); }

/// A new executor of `kind` with `workers` workers (ignored by the inline executor).
inline std::unique_ptr<mpaio::Executor> make_executor(ExecutorKind kind, std::size_t workers,
                                                      mpaio::ProcessPoolOptions process_options = {}) {
  switch (kind) {
    case ExecutorKind::inline_: return std::make_unique<mpaio::InlineExecutor>();
    case ExecutorKind::thread: return std::make_unique<mpaio::ThreadPoolExecutor>(mpaio::ThreadPoolOptions{.workers = workers});
    case ExecutorKind::process:
      process_options.workers = workers;
      return std::make_unique<mpaio::ProcessPoolExecutor>(process_options);
  }
  return nullptr;
}

/// Reads a flag that another thread or process writes (the input array is read-only in `process`).
inline std::int32_t load_flag(const std::int32_t* flag) noexcept { return __atomic_load_n(flag, __ATOMIC_ACQUIRE); }
/// Writes a flag that `process` reads in another thread or process.
inline void store_flag(std::int32_t* flag, std::int32_t value) noexcept { __atomic_store_n(flag, value, __ATOMIC_RELEASE); }

/// The value a `process` returns when it gave up waiting: a test that sees it fails.
inline constexpr std::int32_t kGaveUp = -1;

/// Polls (sleeping 100 us between reads, so waiting workers leave the CPUs to the caller) until `ready(load_flag(flag))` or `limit` passes; returns the last value read, or
/// kGaveUp on time-out. The limit is a safety net so that a broken engine fails instead of hanging,
/// never a timing assertion.
template <class Ready>
std::int32_t wait_for_flag(const std::int32_t* flag, Ready ready, std::chrono::seconds limit = std::chrono::seconds(20)) {
  std::int32_t value = kGaveUp;
  const bool held = poll_until([&] { return ready(value = load_flag(flag)); }, limit, std::chrono::microseconds(100));
  return held ? value : kGaveUp;
}

}  // namespace mpaio_test

// ---- checks of a RunReport -----------------------------------------------------------------------------------

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "mpaio/run_report.hpp"
#include "mpaio/worker.hpp"

namespace mpaio_test {

/// Expects `report` to account for exactly the chunks of `workers` (each range once, none failed), run by
/// `pids` (the pool's worker pids for a process pool, {getpid()} otherwise), on slots below `concurrency`.
inline void expect_report_covers(const mpaio::RunReport& report, const std::vector<const mpaio::WorkerBase*>& workers,
                                 const std::set<pid_t>& pids, std::size_t concurrency) {
  std::size_t total = 0;
  for (const auto* w : workers) total += w->chunks().size();
  EXPECT_EQ(report.chunks.size(), total) << "one ChunkRecord per chunk";
  EXPECT_EQ(report.concurrency, concurrency);
  EXPECT_GT(report.wall_time.count(), 0);
  ASSERT_EQ(report.worker_types.size(), workers.size());
  for (std::size_t w = 0; w < workers.size(); ++w) {
    EXPECT_EQ(report.worker_types[w], workers[w]->type_name());
    std::vector<mpaio::Range> expected(workers[w]->chunks().begin(), workers[w]->chunks().end());
    std::vector<mpaio::Range> seen;
    for (const auto& c : report.chunks) {
      if (c.worker == w) seen.push_back(c.range);
    }
    auto by_start = [](const mpaio::Range& a, const mpaio::Range& b) {
      return a.start != b.start ? a.start < b.start : a.end < b.end;
    };
    std::sort(expected.begin(), expected.end(), by_start);
    std::sort(seen.begin(), seen.end(), by_start);
    EXPECT_EQ(seen, expected) << "worker " << w << ": every range exactly once";
  }
  std::size_t bad = 0;
  for (const auto& c : report.chunks) {
    const bool ok = c.worker < workers.size() && !c.failed && c.slot < concurrency && pids.count(c.pid) == 1 &&
                    c.start <= c.end;
    if (!ok && ++bad <= 5) {
      ADD_FAILURE() << "chunk " << c.range << " of worker " << c.worker << ": slot " << c.slot << " pid " << c.pid
                    << " failed " << c.failed << " start " << c.start.count() << " end " << c.end.count();
    }
  }
  EXPECT_EQ(bad, 0U);
}

}  // namespace mpaio_test
