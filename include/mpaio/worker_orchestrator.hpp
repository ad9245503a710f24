#pragma once
/// @file worker_orchestrator.hpp
/// WorkerOrchestrator: runs every chunk of every worker on an executor and routes each result to its
/// worker's callback, on the caller's event loop, as soon as it lands.

#include <chrono>
#include <initializer_list>
#include <vector>

#include <asio/awaitable.hpp>

#include "mpaio/executor.hpp"
#include "mpaio/run_report.hpp"
#include "mpaio/worker.hpp"

namespace mpaio {

/// Options of a WorkerOrchestrator.
struct OrchestratorOptions {
  /// Sample per-core CPU utilisation from /proc/stat during the run (RunReport::cpu).
  bool monitor_cpu_usage = false;
  /// Time between two CPU samples.
  std::chrono::milliseconds cpu_sample_interval{200};
};

/// Dispatches the chunks of several workers (of different types and arrays) to one executor.
///
/// Callbacks run on the thread that runs the event loop of run(), one at a time, as results land; the
/// loop stays free for other work while chunks run. A chunk that fails (an exception in `process`, a
/// crashed worker) stops the dispatch of new chunks; once the chunks in flight are accounted for, run()
/// throws a ChunkError (WorkerCrashed for a crash) naming the worker type, the range, the worker's slot
/// and pid, and the cause. The executor stays usable for the next run. The workers and the executor
/// must outlive the orchestrator; one run at a time per executor.
class WorkerOrchestrator {
 public:
  WorkerOrchestrator(Executor& executor, std::vector<WorkerBase*> workers, OrchestratorOptions options = {});

  /// Runs every chunk; completes when all results have been delivered. Use from a coroutine on any
  /// io_context: `RunReport report = co_await orchestrator.run();`. Throws InvalidArgument (bad arrays,
  /// before anything is dispatched), ChunkError, or what a callback threw.
  asio::awaitable<RunReport> run();

  /// run() on an io_context of its own, returning when the run is over.
  RunReport run_blocking();

 private:
  class Run;
  Executor& executor_;
  std::vector<WorkerBase*> workers_;
  OrchestratorOptions options_;
};

}  // namespace mpaio
