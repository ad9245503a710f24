#pragma once
/// @file executor.hpp
/// Executor: where chunks run. The orchestrator drives any Executor through this interface.
///
/// A run goes: start_run() once; try_submit() as long as it accepts chunks; the executor reports every
/// submitted chunk exactly once through RunSink::on_chunk_done(), on the run's event loop (never from
/// another thread, never from inside try_submit); after the last report, or to abandon the run,
/// stop_run(). The sink may call try_submit() from inside on_chunk_done().
///
/// To write an executor: run each chunk with detail::execute_chunk(task.fn, call) where `call` points at
/// the task's array (RunArray::data, or a mapping of RunArray::segment_fd in another process) and its
/// parameters (detail::run_params_ref), collect the encoded result bytes, and report them with the timing
/// and the slot/pid that ran them (or, for a chunk that threw, the execution's error fields and
/// failure_payload). In another process, find the worker type by task.worker_type
/// (detail::find_worker_type) rather than through task.fn.

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <sys/types.h>

#include <asio/any_io_executor.hpp>

#include "mpaio/array_meta.hpp"
#include "mpaio/detail/chunk_call.hpp"
#include "mpaio/detail/worker_registry.hpp"
#include "mpaio/range.hpp"

namespace mpaio {

/// The default worker count of the pools: std::thread::hardware_concurrency(), or 1 when it is unknown.
inline std::size_t default_worker_count() noexcept { return std::max(1U, std::thread::hardware_concurrency()); }

/// An array used by a run, resolved in the calling process.
struct RunArray {
  ArrayMeta meta;
  std::uint64_t segment_key = 0;   ///< identifies the segment among this process's segments
  int segment_fd = -1;             ///< descriptor of the segment (valid for the run; dup it to keep it)
  std::size_t segment_size = 0;
  const std::byte* data = nullptr; ///< element 0 in this process's mapping
};

/// The parameters of one worker object of a run (Worker's Params), for the executors.
struct RunParams {
  const void* object = nullptr;          ///< the Params object, for executors in this process
  std::span<const std::byte> encoded;    ///< its encoded bytes, for executors that send them elsewhere
};

/// ChunkTask::params of a worker type without parameters.
inline constexpr std::uint32_t kNoRunParams = 0xffffffffu;

/// One chunk handed to an executor.
struct ChunkTask {
  std::uint64_t id = 0;                    ///< the chunk's number in the run, reported back
  detail::ChunkFn fn = nullptr;            ///< the worker type's entry point in this process
  detail::WorkerTypeId worker_type = 0;    ///< the worker type's id, which names it in any process
  std::uint32_t array = 0;                 ///< index into the run's arrays
  std::uint32_t params = kNoRunParams;     ///< index into the run's parameters, or kNoRunParams
  Range range;
};

/// Why a chunk has no result.
enum class ChunkFailure {
  none,       ///< it succeeded
  exception,  ///< `process` (or `init`) threw: error_type is the exception type, error_message its what(),
              ///< failure_payload the exception itself when its type is registered (register_exception)
  crash,      ///< the worker process died while running it: error_message says how (signal, exit code)
  timeout,    ///< it ran past the run's chunk timeout and its worker was stopped
};

/// What an executor reports for one chunk.
struct ChunkOutcome {
  std::uint64_t id = 0;
  std::span<const std::byte> result;  ///< the encoded result; valid only during on_chunk_done
  std::int64_t start_ns = 0;          ///< steady clock, as detail::monotonic_ns()
  std::int64_t end_ns = 0;
  std::uint32_t slot = 0;             ///< which of the executor's workers ran it
  pid_t pid = 0;                      ///< the process that ran it
  ChunkFailure failure = ChunkFailure::none;
  std::string_view error_type;        ///< exception: its demangled type
  std::string_view error_message;     ///< when failed: what happened
  /// exception: the exception itself when its type is registered (ChunkExecution::failure_payload, carried
  /// as it is), empty otherwise; valid only during on_chunk_done
  std::span<const std::byte> failure_payload;
};

/// Receives chunk outcomes; implemented by the orchestrator.
class RunSink {
 public:
  /// Called once per submitted chunk, on the run's event loop. Must not throw.
  virtual void on_chunk_done(const ChunkOutcome& outcome) noexcept = 0;
  /// Called, on the run's event loop, when the executor can take chunks again after try_submit()
  /// refused one for a reason other than a chunk in flight (e.g. a worker being replaced).
  virtual void on_room() noexcept = 0;

 protected:
  ~RunSink() = default;
};

/// What an executor needs to start a run.
struct RunContext {
  asio::any_io_executor loop;       ///< the event loop of the caller; reports are delivered on it
  RunSink* sink = nullptr;
  std::span<const RunArray> arrays; ///< valid until stop_run()
  std::span<const RunParams> params; ///< valid until stop_run()
  /// A chunk running longer than this is stopped and reported as ChunkFailure::timeout (0: no limit).
  std::chrono::milliseconds chunk_timeout{0};
  /// After a timeout: how long the worker has between SIGTERM and SIGKILL.
  std::chrono::milliseconds timeout_grace{1000};
};

namespace detail {
/// The parameters of `task` in the process that made the run (for executors that run chunks in it).
inline ParamsRef run_params_ref(const RunContext& context, const ChunkTask& task) {
  if (task.params == kNoRunParams || task.params >= context.params.size()) return {};
  return {context.params[task.params].object, context.params[task.params].encoded, nullptr};
}
}  // namespace detail

/// Where chunks run. Implementations: InlineExecutor, ThreadPoolExecutor, ProcessPoolExecutor.
/// It serves one run at a time (WorkerOrchestrator makes runs on one executor take turns, so an
/// implementation needs no guard of its own); the calls of a run are made on its event loop's thread, and
/// the next run's may come from another thread, after the previous run's stop_run().
class Executor {
 public:
  virtual ~Executor() = default;
  /// A short name for reports ("inline", "thread", "process").
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  /// How many chunks can run at the same time.
  [[nodiscard]] virtual std::size_t concurrency() const noexcept = 0;
  /// Whether it can stop a chunk that runs too long (RunContext::chunk_timeout) or is cancelled.
  [[nodiscard]] virtual bool can_stop_chunks() const noexcept { return false; }
  /// Prepares a run (binds its arrays, starts watching for results).
  virtual void start_run(const RunContext& context) = 0;
  /// Queues a chunk; returns false when the executor's queues are full (try again after a report).
  virtual bool try_submit(const ChunkTask& task) = 0;
  /// Asks the chunks in flight to end early (their StopToken reads true); they still report.
  virtual void request_stop() noexcept = 0;
  /// Ends the run: chunks not yet reported are abandoned and never reported; stops them where it can.
  virtual void stop_run() noexcept = 0;
};

}  // namespace mpaio
