#pragma once
/// @file thread_pool_executor.hpp
/// ThreadPoolExecutor: runs chunks on a pool of threads in the calling process.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "mpaio/detail/unique_fd.hpp"
#include "mpaio/executor.hpp"

namespace mpaio {

/// Options of a ThreadPoolExecutor.
struct ThreadPoolOptions {
  /// Number of threads (at least 1); by default one per core.
  std::size_t workers = default_worker_count();
  /// Chunks queued per thread beyond the one it runs (the threads share one queue, so a deep one costs no
  /// balance, and a thread finds work without waiting for the loop).
  std::size_t queue_depth = 32;
};

/// Runs chunks on `workers` threads of the calling process. Results reach the run's event loop through an
/// eventfd it watches (the threads never touch the loop itself, which may be being destroyed).
/// No isolation: a crash in `process` takes the program down (use ProcessPoolExecutor for that).
/// stop_run() waits for the chunks already running, since a thread cannot be stopped from outside.
class ThreadPoolExecutor final : public Executor {
 public:
  explicit ThreadPoolExecutor(ThreadPoolOptions options = {});
  ~ThreadPoolExecutor() override;
  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

  [[nodiscard]] std::string_view name() const noexcept override { return "thread"; }
  [[nodiscard]] std::size_t concurrency() const noexcept override { return threads_.size(); }
  void start_run(const RunContext& context) override;
  bool try_submit(const ChunkTask& task) override;
  void request_stop() noexcept override { stop_.store(1, std::memory_order_relaxed); }
  void stop_run() noexcept override;

 private:
  struct RunToken;
  struct Finished;
  void thread_main(std::size_t slot);
  void wait_for_results();

  std::size_t capacity_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<ChunkTask> queue_;
  std::size_t running_ = 0;
  std::vector<Finished> finished_;  // run by a thread, not yet reported on the loop
  std::size_t outstanding_ = 0;  // submitted and not yet reported (loop thread only)
  bool stopping_ = false;
  std::atomic<std::uint32_t> stop_{0};
  RunContext context_;
  std::shared_ptr<RunToken> token_;  // loop thread only
  detail::UniqueFd eventfd_;         // written by the threads when they finish a chunk
  std::vector<std::thread> threads_;
};

}  // namespace mpaio
