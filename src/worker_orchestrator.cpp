#include "mpaio/worker_orchestrator.hpp"

#include <algorithm>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <unordered_map>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "mpaio/cpu_monitor.hpp"
#include "mpaio/error.hpp"
#include "mpaio/exception_registry.hpp"
#include "run_arrays.hpp"
#include "run_gate.hpp"

namespace mpaio {

namespace {

/// Samples per-core CPU utilisation until stopped; shared with its coroutine.
struct CpuSampler {
  CpuSampler(const asio::any_io_executor& loop, std::chrono::milliseconds interval, std::int64_t origin_ns)
      : timer(loop), interval(interval), origin_ns(origin_ns), last(read_cpu_times()) {}

  void sample() {
    last_ns = detail::monotonic_ns();
    auto now = read_cpu_times();
    samples.push_back({static_cast<double>(detail::monotonic_ns() - origin_ns) / 1e6, cpu_utilisation(last, now)});
    last = std::move(now);
  }

  asio::steady_timer timer;
  std::chrono::milliseconds interval;
  std::int64_t origin_ns;
  std::vector<CpuTimes> last;
  std::vector<CpuSample> samples;
  std::int64_t last_ns = 0;
  bool stopped = false;
};

/// The ChunkError of a registered exception: also a std::nested_exception holding it, so that
/// std::rethrow_if_nested() on the ChunkError rethrows the original.
class NestedChunkError final : public ChunkError, public std::nested_exception {
 public:
  /// Must be made while the original is the exception being handled.
  explicit NestedChunkError(ChunkError error) : ChunkError(std::move(error)) {}
};

asio::awaitable<void> sample_cpu(std::shared_ptr<CpuSampler> sampler) {
  while (!sampler->stopped) {
    sampler->timer.expires_after(sampler->interval);
    std::error_code ec;
    co_await sampler->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (sampler->stopped) break;
    sampler->sample();
  }
}
}  // namespace

/// The state of one run; receives the executor's reports.
class WorkerOrchestrator::Run final : public RunSink {
 public:
  Run(WorkerOrchestrator& owner, const asio::any_io_executor& loop) : owner_(owner), done_(loop) {
    done_.expires_at(asio::steady_timer::time_point::max());
  }

  /// Resolves and checks every worker's array before anything is dispatched.
  void prepare() {
    offsets_.push_back(0);
    for (WorkerBase* worker : owner_.workers_) {
      if (worker == nullptr) throw InvalidArgument("WorkerOrchestrator: a worker pointer is null");
      report_.worker_types.push_back(worker->type_name());
      array_of_.push_back(arrays_.add(worker->chunks().meta(), worker->element_type(), report_.worker_types.back()));
      params_of_.push_back(kNoRunParams);
      if (worker->params_object() != nullptr) {
        params_of_.back() = static_cast<std::uint32_t>(params_.size());
        params_.push_back(RunParams{worker->params_object(), worker->encoded_params()});
      }
      offsets_.push_back(offsets_.back() + worker->chunks().size());
    }
    total_ = offsets_.back();
    for (WorkerBase* worker : owner_.workers_) {
      const DataIterator& chunks = worker->chunks();
      if (!chunks.empty()) total_elements_ += chunks[chunks.size() - 1].end - chunks[0].start;
    }
    report_.executor = std::string(owner_.executor_.name());
    report_.concurrency = owner_.executor_.concurrency();
  }

  [[nodiscard]] std::size_t total() const noexcept { return total_; }
  /// Shows a progress bar from now on (if the mode and the terminal allow).
  void show_progress(ProgressMode mode) {
    if (mode != ProgressMode::off) progress_.emplace(total_, total_elements_, ProgressBar::Options{.mode = mode});
  }
  void end_progress() {
    if (progress_) progress_->finish();
  }
  [[nodiscard]] std::span<const RunArray> arrays() const noexcept { return arrays_.arrays(); }
  [[nodiscard]] std::span<const RunParams> params() const noexcept { return params_; }
  [[nodiscard]] bool finished() const noexcept { return stopping_ ? in_flight_ == 0 : completed_ == total_; }
  asio::steady_timer& done_signal() noexcept { return done_; }

  void start(std::int64_t origin_ns) { origin_ns_ = origin_ns; }

  /// Submits chunks while the executor takes them: chunks to retry first, then new ones.
  void pump() {
    try {
      while (!stopping_ && (!retry_.empty() || next_ < total_)) {
        const bool retry = !retry_.empty();
        if (!owner_.executor_.try_submit(task_for(retry ? retry_.front() : next_))) break;
        retry ? retry_.pop_front() : void(++next_);
        ++in_flight_;
      }
    } catch (...) {
      fail(std::current_exception());
    }
    if (finished()) done_.cancel();
  }

  void on_room() noexcept override { pump(); }

  void on_chunk_done(const ChunkOutcome& outcome) noexcept override {
    --in_flight_;
    const std::size_t w = worker_of(outcome.id);
    const Range range = owner_.workers_[w]->chunks()[outcome.id - offsets_[w]];
    try {
      report_.chunks.push_back({w, range, outcome.slot, outcome.pid,
                                std::chrono::nanoseconds(std::max<std::int64_t>(0, outcome.start_ns - origin_ns_)),
                                std::chrono::nanoseconds(std::max<std::int64_t>(0, outcome.end_ns - origin_ns_)),
                                outcome.failure != ChunkFailure::none});
      if (outcome.failure == ChunkFailure::none) {
        ++completed_;
        elements_done_ += range.size();
        if (progress_) progress_->update(completed_, elements_done_);
        owner_.workers_[w]->deliver(outcome.result, range);  // even when stopping: it is a good result
      } else if (unsigned& attempts = attempts_[outcome.id]; attempts < owner_.options_.retries && !stopping_) {
        ++attempts;
        retry_.push_back(outcome.id);
      } else {
        ++completed_;
        failed(w, range, error_for(outcome, w, range));
      }
    } catch (...) {
      fail(std::current_exception());
    }
    pump();
  }

  /// A chunk failed for good: note it, and fail the run unless the policy is to go on.
  void failed(std::size_t w, Range range, std::exception_ptr error) {
    std::string message;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      message = e.what();
    }
    report_.failures.push_back({w, range, std::move(message), error});
    if (owner_.options_.on_error == ErrorPolicy::fail_fast) fail(std::move(error));
  }

  [[nodiscard]] std::exception_ptr error_for(const ChunkOutcome& o, std::size_t w, Range range) const {
    const std::string& type = report_.worker_types[w];
    switch (o.failure) {
      case ChunkFailure::crash:
        return std::make_exception_ptr(
            WorkerCrashed(type, range, o.slot, o.pid, "worker process crashed", std::string(o.error_message)));
      case ChunkFailure::timeout:
        return std::make_exception_ptr(
            ChunkTimeout(type, range, o.slot, o.pid, "chunk timed out", std::string(o.error_message)));
      default: {
        ChunkError error(type, range, o.slot, o.pid, std::string(o.error_type), std::string(o.error_message),
                         original_of(o));
        if (!error.original()) return std::make_exception_ptr(std::move(error));
        try {
          error.rethrow_original();
        } catch (...) {  // NestedChunkError's std::nested_exception takes the exception being handled
          return std::make_exception_ptr(NestedChunkError(std::move(error)));
        }
        return nullptr;  // not reached: rethrow_original() threw
      }
    }
  }

  /// The exception `process` threw, rebuilt from the outcome's payload; null without one, or when it cannot
  /// be rebuilt here (the ChunkError still carries the type's name and message).
  static std::exception_ptr original_of(const ChunkOutcome& o) noexcept {
    try {
      return detail::decode_exception(o.failure_payload);
    } catch (...) {
      return nullptr;
    }
  }

  /// Stops dispatching because the run was cancelled.
  void cancel() {
    fail(std::make_exception_ptr(RunCancelled(
        fmt::format("WorkerOrchestrator::run: cancelled after {} of {} chunks", completed_, total_))));
  }

  /// Stops dispatching; the first error is the one the run reports.
  void fail(std::exception_ptr error) noexcept {
    if (!error_) error_ = std::move(error);
    stopping_ = true;
  }

  /// Completes the report and keeps a copy in the orchestrator; throws the run's error, if any.
  RunReport finish(std::int64_t end_ns) {
    report_.wall_time = std::chrono::nanoseconds(end_ns - origin_ns_);
    // Counted from the dispatch state, not as the remainder of the outcomes, so that a chunk reported
    // twice or never shows as a mismatch between delivered + failed + unfinished and the chunk count.
    report_.unfinished = (total_ - next_) + retry_.size() + in_flight_;
    if (error_) {
      owner_.last_report_ = std::move(report_);
      std::rethrow_exception(error_);
    }
    owner_.last_report_ = report_;
    return std::move(report_);
  }

  RunReport& report() noexcept { return report_; }

 private:
  [[nodiscard]] std::size_t worker_of(std::uint64_t id) const noexcept {
    return static_cast<std::size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), id) - offsets_.begin()) - 1;
  }

  [[nodiscard]] ChunkTask task_for(std::uint64_t id) const {
    const std::size_t w = worker_of(id);
    const WorkerBase& worker = *owner_.workers_[w];
    return ChunkTask{id, worker.chunk_function(), worker.worker_type(), array_of_[w], params_of_[w],
                     worker.chunks()[id - offsets_[w]]};
  }

  WorkerOrchestrator& owner_;
  asio::steady_timer done_;
  detail::RunArrays arrays_;
  std::vector<std::uint32_t> array_of_;  // per worker
  std::vector<RunParams> params_;        // of the workers that have parameters
  std::vector<std::uint32_t> params_of_; // per worker: index into params_, or kNoRunParams
  std::vector<std::size_t> offsets_;     // chunk ids of worker w are [offsets_[w], offsets_[w+1])
  std::size_t total_ = 0;
  std::size_t total_elements_ = 0;
  std::size_t elements_done_ = 0;
  std::optional<ProgressBar> progress_;
  std::size_t next_ = 0;
  std::size_t in_flight_ = 0;
  std::size_t completed_ = 0;                         // chunks done for good (succeeded, or failed finally)
  std::deque<std::uint64_t> retry_;                   // failed chunks to submit again
  std::unordered_map<std::uint64_t, unsigned> attempts_;  // retries used, per chunk
  bool stopping_ = false;
  std::exception_ptr error_;
  std::int64_t origin_ns_ = 0;
  RunReport report_;
};

WorkerOrchestrator::WorkerOrchestrator(Executor& executor, std::vector<WorkerBase*> workers,
                                       OrchestratorOptions options)
    : executor_(executor), workers_(std::move(workers)), options_(options) {
  if (options_.cpu_sample_interval.count() <= 0) {
    throw InvalidArgument("WorkerOrchestrator: cpu_sample_interval must be positive");
  }
  if (options_.chunk_timeout.count() < 0 || options_.timeout_grace.count() < 0) {
    throw InvalidArgument("WorkerOrchestrator: chunk_timeout and timeout_grace must not be negative");
  }
  if (options_.chunk_timeout.count() > 0 && !executor_.can_stop_chunks()) {
    throw InvalidArgument(fmt::format("WorkerOrchestrator: chunk_timeout needs an executor that can stop a chunk "
                                      "(ProcessPoolExecutor); the {} executor cannot",
                                      executor_.name()));
  }
}

asio::awaitable<RunReport> WorkerOrchestrator::run() {
  // Cancellation is handled below (grace period, then RunCancelled), not by Asio throwing at the next co_await.
  co_await asio::this_coro::throw_if_cancelled(false);
  const auto loop = co_await asio::this_coro::executor;
  last_report_ = {};
  // Destroyed after stop_on_exit below: the next run starts once this one has stopped the executor.
  const detail::RunGate::Turn turn = co_await detail::RunGate::take(executor_);
  Run run(*this, loop);
  run.prepare();
  const std::int64_t origin = detail::monotonic_ns();
  run.start(origin);
  if (run.total() == 0) co_return run.finish(origin);

  std::shared_ptr<CpuSampler> sampler;
  if (options_.monitor_cpu_usage) {
    sampler = std::make_shared<CpuSampler>(loop, options_.cpu_sample_interval, origin);
    asio::co_spawn(loop, sample_cpu(sampler), asio::detached);
  }
  executor_.start_run(RunContext{loop, &run, run.arrays(), run.params(), options_.chunk_timeout, options_.timeout_grace});
  struct StopOnExit {  // also when the coroutine is destroyed while suspended
    Executor& executor;
    std::shared_ptr<CpuSampler> sampler;
    ~StopOnExit() {
      executor.stop_run();
      if (sampler) {
        sampler->stopped = true;
        sampler->timer.cancel();
      }
    }
  } stop_on_exit{executor_, sampler};

  run.show_progress(options_.progress);
  run.pump();
  while (!run.finished()) {
    std::error_code ec;
    co_await run.done_signal().async_wait(asio::redirect_error(asio::use_awaitable, ec));
    // The signal only completes early when our caller cancels: stop dispatching, let the chunks in
    // flight see their StopToken for cancel_grace, then stop_on_exit stops what still runs.
    if (ec == asio::error::operation_aborted && !run.finished()) {
      run.cancel();
      executor_.request_stop();
      if (!run.finished() && options_.cancel_grace.count() > 0) {
        run.done_signal().expires_after(options_.cancel_grace);
        co_await run.done_signal().async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      break;
    }
  }
  const std::int64_t end = detail::monotonic_ns();
  run.end_progress();
  if (sampler) {
    // A last sample for the tail of the run, unless it would cover less than /proc/stat's 10 ms tick.
    if (end - std::max(sampler->last_ns, origin) >= 10'000'000) sampler->sample();
    run.report().cpu = std::move(sampler->samples);
  }
  co_return run.finish(end);
}

RunReport WorkerOrchestrator::run_blocking() {
  if (detail::RunGate::held_from_this_thread(executor_)) {
    throw InvalidArgument(fmt::format(
        "WorkerOrchestrator::run_blocking: a run started from this thread holds the {} executor (is this one of its "
        "callbacks?); waiting for it here would wait for ever, since this thread drives it. Start this run with "
        "co_spawn(loop, run(), ...) instead",
        executor_.name()));
  }
  asio::io_context io;
  std::optional<RunReport> report;
  std::exception_ptr error;
  asio::co_spawn(io, run(), [&](std::exception_ptr e, RunReport r) {
    if (e) {
      error = e;
    } else {
      report = std::move(r);
    }
  });
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*report);
}

}  // namespace mpaio
