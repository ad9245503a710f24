#pragma once
// Workers and helpers shared by the benchmark programs.

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <mpaio/mpaio.hpp>

/// An empty chunk: the cost of dispatch alone.
struct EmptyWorker : mpaio::Worker<EmptyWorker, std::int32_t> {
  using Worker::Worker;
  static std::int32_t process(mpaio::ArrayView<const std::int64_t>, mpaio::Range) { return 0; }
  void process_callback(std::int32_t value) { done += 1 + value; }
  std::int64_t done = 0;
};

/// The seed workload: a sum.
struct SumWorker : mpaio::Worker<SumWorker, std::int64_t> {
  using Worker::Worker;
  static std::int64_t process(mpaio::ArrayView<const std::int64_t> data, mpaio::Range chunk) {
    std::int64_t sum = 0;
    for (std::int64_t v : data.slice(chunk)) sum += v;
    return sum;
  }
  void process_callback(std::int64_t partial) { total += partial; }
  std::int64_t total = 0;
};

/// The executor named `kind` ("inline", "thread", "process") with `workers` workers.
inline std::unique_ptr<mpaio::Executor> make_executor(std::string_view kind, std::size_t workers) {
  if (kind == "process") return std::make_unique<mpaio::ProcessPoolExecutor>(mpaio::ProcessPoolOptions{.workers = workers});
  if (kind == "thread") return std::make_unique<mpaio::ThreadPoolExecutor>(mpaio::ThreadPoolOptions{.workers = workers});
  return std::make_unique<mpaio::InlineExecutor>();
}

/// The worker count for this run: MPAIO_BENCH_WORKERS, or 2.
inline std::size_t bench_workers() {
  const char* env = std::getenv("MPAIO_BENCH_WORKERS");
  return env != nullptr ? std::stoul(env) : 2;
}
