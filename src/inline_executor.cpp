#include "mpaio/inline_executor.hpp"

#include <unistd.h>

#include <asio/post.hpp>

namespace mpaio {

void InlineExecutor::start_run(const RunContext& context) {
  context_ = context;
  queue_.clear();
  scheduled_ = false;
  stop_.store(0, std::memory_order_relaxed);
  active_ = std::make_shared<bool>(true);
}

bool InlineExecutor::try_submit(const ChunkTask& task) {
  if (queue_.size() >= 2) return false;
  queue_.push_back(task);
  if (!scheduled_) {
    scheduled_ = true;
    asio::post(context_.loop, [this, active = active_] {
      if (*active) run_next();
    });
  }
  return true;
}

void InlineExecutor::run_next() {
  scheduled_ = false;
  if (queue_.empty()) return;
  const ChunkTask task = queue_.front();
  queue_.pop_front();
  const RunArray& array = context_.arrays[task.array];
  out_.clear();
  const detail::ParamsRef params = detail::run_params_ref(context_, task);
  const detail::ChunkCall call{array.data, array.meta.shape, task.range, &out_, &stop_, &params};
  const detail::ChunkExecution done = detail::execute_chunk(task.fn, call);
  const ChunkOutcome outcome{task.id, out_, done.start_ns, done.end_ns, 0, ::getpid(),
                             done.failed ? ChunkFailure::exception : ChunkFailure::none, done.error_type,
                             done.error_message, done.failure_payload};
  if (!queue_.empty() && !scheduled_) {  // keep going before the sink submits more
    scheduled_ = true;
    asio::post(context_.loop, [this, active = active_] {
      if (*active) run_next();
    });
  }
  context_.sink->on_chunk_done(outcome);
}

void InlineExecutor::stop_run() noexcept {
  if (active_) *active_ = false;
  queue_.clear();
  scheduled_ = false;
}

}  // namespace mpaio
