#pragma once
/// @file worker_orchestrator.hpp
/// WorkerOrchestrator: runs every chunk of every worker on an executor and routes each result to its
/// worker's callback, on the caller's event loop, as soon as it lands.

#include <chrono>
#include <initializer_list>
#include <vector>

#include <asio/awaitable.hpp>

#include "mpaio/executor.hpp"
#include "mpaio/progress_bar.hpp"
#include "mpaio/run_report.hpp"
#include "mpaio/worker.hpp"

namespace mpaio {

/// What a run does when a chunk fails for good (after its retries).
enum class ErrorPolicy {
  /// Stop dispatching; once the chunks in flight are accounted for, run() throws the first error.
  fail_fast,
  /// Finish every other chunk; run() returns normally and RunReport::failures lists the failed ones.
  collect,
};

/// Options of a WorkerOrchestrator.
struct OrchestratorOptions {
  /// Sample per-core CPU utilisation from /proc/stat during the run (RunReport::cpu).
  bool monitor_cpu_usage = false;
  /// Time between two CPU samples.
  std::chrono::milliseconds cpu_sample_interval{200};
  /// What a failed chunk does to the run.
  ErrorPolicy on_error = ErrorPolicy::fail_fast;
  /// Extra attempts for a chunk that failed (exception, crash or timeout) before it counts as failed.
  unsigned retries = 0;
  /// A chunk running longer than this is stopped and fails with ChunkTimeout (0: no limit). Needs an
  /// executor that can stop chunks (ProcessPoolExecutor).
  std::chrono::milliseconds chunk_timeout{0};
  /// After a timeout, how long the worker has between SIGTERM and SIGKILL.
  std::chrono::milliseconds timeout_grace{1000};
  /// When run() is cancelled: how long chunks in flight get to see their StopToken and return a partial
  /// result (delivered to the callbacks) before they are stopped.
  std::chrono::milliseconds cancel_grace{100};
  /// A progress bar on stderr (chunks, percent, elements per second, ETA); `automatic`: only on a terminal.
  ProgressMode progress = ProgressMode::off;
};

/// Dispatches the chunks of several workers (of different types and arrays) to one executor.
///
/// Callbacks run on the thread that runs the event loop of run(), one at a time, as results land; the
/// loop stays free for other work while chunks run. A chunk that fails (an exception in `process`, a
/// crashed worker, a timeout) is retried `retries` times; then, by default, the dispatch of new chunks
/// stops and, once the chunks in flight are accounted for, run() throws a ChunkError (WorkerCrashed,
/// ChunkTimeout) naming the worker type, the range, the worker's slot and pid, and the cause. With
/// ErrorPolicy::collect the other chunks still run and the failures are listed in the report. Cancelling
/// run() (Asio per-operation cancellation) stops dispatch, stops the chunks in flight where the executor
/// can, and throws RunCancelled. The executor stays usable for the next run. The workers and the
/// executor must outlive the orchestrator.
///
/// Runs on one executor take turns, whichever orchestrators, loops and threads they come from: a run
/// started while another holds the executor waits, without blocking its loop, until that one has ended,
/// then starts on its own loop. Cancelling a waiting run throws RunCancelled and leaves the running one
/// alone; a waiting run whose loop is destroyed gives up its turn.
class WorkerOrchestrator {
 public:
  WorkerOrchestrator(Executor& executor, std::vector<WorkerBase*> workers, OrchestratorOptions options = {});

  /// Runs every chunk; completes when all results have been delivered. Use from a coroutine on any
  /// io_context: `RunReport report = co_await orchestrator.run();`. Waits first for a run that holds the
  /// executor to end. Throws InvalidArgument (bad arrays or options, before anything is dispatched),
  /// ChunkError, RunCancelled (also when cancelled while waiting), or what a callback threw.
  asio::awaitable<RunReport> run();

  /// run() on an io_context of its own, returning when the run is over (after waiting for a run that holds
  /// the executor on another thread). Throws InvalidArgument when a run started from this thread holds the
  /// executor (run_blocking from one of its callbacks): that wait would never end.
  RunReport run_blocking();

  /// The report of the last run, also of one that threw ChunkError or RunCancelled: its chunk records,
  /// its failures and its unfinished chunks up to the moment it stopped. Empty before the first run and
  /// after a run refused before dispatch (InvalidArgument).
  [[nodiscard]] const RunReport& last_report() const noexcept { return last_report_; }

 private:
  class Run;
  Executor& executor_;
  std::vector<WorkerBase*> workers_;
  OrchestratorOptions options_;
  RunReport last_report_;
};

}  // namespace mpaio
