#include "mpaio/thread_pool_executor.hpp"

#include <unistd.h>

#include <atomic>

#include <asio/post.hpp>

#include "mpaio/error.hpp"

namespace mpaio {

struct ThreadPoolExecutor::RunToken {
  std::atomic<bool> active{true};
};

ThreadPoolExecutor::ThreadPoolExecutor(ThreadPoolOptions options) {
  const std::size_t n = options.workers;
  if (n == 0) throw InvalidArgument("ThreadPoolExecutor: workers must be at least 1, got 0");
  if (options.queue_depth == 0) throw InvalidArgument("ThreadPoolExecutor: queue_depth must be at least 1, got 0");
  capacity_ = n * (1 + options.queue_depth);
  threads_.reserve(n);
  for (std::size_t slot = 0; slot < n; ++slot) threads_.emplace_back([this, slot] { thread_main(slot); });
}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPoolExecutor::start_run(const RunContext& context) {
  std::lock_guard lock(mutex_);
  context_ = context;
  outstanding_ = 0;
  stop_.store(0, std::memory_order_relaxed);
  token_ = std::make_shared<RunToken>();
}

bool ThreadPoolExecutor::try_submit(const ChunkTask& task) {
  if (outstanding_ >= capacity_) return false;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(task);
  }
  ++outstanding_;
  wake_.notify_one();
  return true;
}

void ThreadPoolExecutor::stop_run() noexcept {
  std::unique_lock lock(mutex_);
  if (token_) token_->active = false;
  queue_.clear();
  idle_.wait(lock, [&] { return running_ == 0; });  // running chunks still read the run's arrays
  token_.reset();
}

void ThreadPoolExecutor::thread_main(std::size_t slot) {
  std::vector<std::byte> out;
  const pid_t pid = ::getpid();
  for (;;) {
    ChunkTask task;
    RunContext context;
    std::shared_ptr<RunToken> token;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      task = queue_.front();
      queue_.pop_front();
      context = context_;
      token = token_;
      ++running_;
    }
    const RunArray& array = context.arrays[task.array];
    out.clear();
    const detail::ChunkCall call{array.data, array.meta.shape, task.range, &out, &stop_};
    detail::ChunkExecution done = detail::execute_chunk(task.fn, call);
    asio::post(context.loop, [this, token, sink = context.sink, task, slot, pid, done = std::move(done),
                              result = out]() noexcept {
      if (!token->active) return;  // the run this chunk belonged to has stopped
      --outstanding_;
      const ChunkOutcome outcome{task.id, result, done.start_ns, done.end_ns, static_cast<std::uint32_t>(slot), pid,
                                 done.failed ? ChunkFailure::exception : ChunkFailure::none, done.error_type, done.error_message};
      sink->on_chunk_done(outcome);
    });
    {
      std::lock_guard lock(mutex_);
      --running_;
    }
    idle_.notify_all();
  }
}

}  // namespace mpaio
