#include "mpaio/thread_pool_executor.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <asio/posix/stream_descriptor.hpp>

#include "mpaio/detail/syscall.hpp"
#include "mpaio/error.hpp"

namespace mpaio {

/// A run's wake-up: the executor's eventfd, watched on the run's loop. Shared with the pending wait, so that
/// it outlives a stopped run.
struct ThreadPoolExecutor::RunToken {
  explicit RunToken(const asio::any_io_executor& loop) : wake(loop) {}
  bool active = true;
  asio::posix::stream_descriptor wake;
};

/// A chunk a thread has run, waiting for the loop to report it.
struct ThreadPoolExecutor::Finished {
  ChunkTask task;
  std::uint32_t slot = 0;
  pid_t pid = 0;
  detail::ChunkExecution done;
  std::vector<std::byte> result;
};

ThreadPoolExecutor::ThreadPoolExecutor(ThreadPoolOptions options) {
  const std::size_t n = options.workers;
  if (n == 0) throw InvalidArgument("ThreadPoolExecutor: workers must be at least 1, got 0");
  if (options.queue_depth == 0) throw InvalidArgument("ThreadPoolExecutor: queue_depth must be at least 1, got 0");
  capacity_ = n * (1 + options.queue_depth);
  eventfd_ = detail::UniqueFd(detail::sys("eventfd", [] { return ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }));
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
  std::uint64_t stale = 0;
  (void)::read(eventfd_.get(), &stale, sizeof stale);  // wake-ups from the end of the previous run
  auto token = std::make_shared<RunToken>(context.loop);
  token->wake.assign(detail::dup_fd(eventfd_.get()).release());
  {
    std::lock_guard lock(mutex_);
    context_ = context;
    outstanding_ = 0;
    stop_.store(0, std::memory_order_relaxed);
  }
  token_ = std::move(token);
  wait_for_results();
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
  if (token_) {
    token_->active = false;
    std::error_code ignored;
    token_->wake.cancel(ignored);
  }
  {
    std::unique_lock lock(mutex_);
    queue_.clear();
    idle_.wait(lock, [&] { return running_ == 0; });  // running chunks still read the run's arrays
    finished_.clear();
  }
  token_.reset();
}

void ThreadPoolExecutor::wait_for_results() {
  token_->wake.async_wait(asio::posix::stream_descriptor::wait_read, [this, token = token_](const std::error_code& ec) {
    if (ec || !token->active) return;
    std::uint64_t count = 0;
    (void)::read(eventfd_.get(), &count, sizeof count);
    std::vector<Finished> batch;
    {
      std::lock_guard lock(mutex_);
      batch.swap(finished_);
    }
    for (const Finished& f : batch) {
      if (!token->active) return;  // a callback stopped the run
      --outstanding_;
      const ChunkOutcome outcome{f.task.id, f.result, f.done.start_ns, f.done.end_ns, f.slot, f.pid,
                                 f.done.failed ? ChunkFailure::exception : ChunkFailure::none, f.done.error_type,
                                 f.done.error_message, f.done.failure_payload};
      context_.sink->on_chunk_done(outcome);
    }
    if (token->active) wait_for_results();
  });
}

void ThreadPoolExecutor::thread_main(std::size_t slot) {
  std::vector<std::byte> out;
  const pid_t pid = ::getpid();
  for (;;) {
    ChunkTask task;
    RunContext context;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      task = queue_.front();
      queue_.pop_front();
      context = context_;
      ++running_;
    }
    const RunArray& array = context.arrays[task.array];
    out.clear();
    const detail::ParamsRef params = detail::run_params_ref(context, task);
    const detail::ChunkCall call{array.data, array.meta.shape, task.range, &out, &stop_, &params};
    detail::ChunkExecution done = detail::execute_chunk(task.fn, call);
    {
      std::lock_guard lock(mutex_);
      finished_.push_back(Finished{task, static_cast<std::uint32_t>(slot), pid, std::move(done), std::move(out)});
      --running_;
      if (finished_.size() == 1) {  // the first of a batch wakes the loop (without touching it); the rest join it
        const std::uint64_t one = 1;
        (void)::write(eventfd_.get(), &one, sizeof one);
      }
    }
    idle_.notify_all();
  }
}

}  // namespace mpaio
