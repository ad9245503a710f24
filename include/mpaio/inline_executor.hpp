#pragma once
/// @file inline_executor.hpp
/// InlineExecutor: runs chunks one at a time in the calling process, on its event loop.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "mpaio/executor.hpp"

namespace mpaio {

/// Runs every chunk in the calling process, one at a time, each as its own handler on the run's event
/// loop (so other handlers still interleave). For stepping through `process` with an ordinary debugger.
class InlineExecutor final : public Executor {
 public:
  InlineExecutor() = default;
  [[nodiscard]] std::string_view name() const noexcept override { return "inline"; }
  [[nodiscard]] std::size_t concurrency() const noexcept override { return 1; }
  void start_run(const RunContext& context) override;
  bool try_submit(const ChunkTask& task) override;
  void request_stop() noexcept override { stop_.store(1, std::memory_order_relaxed); }
  void stop_run() noexcept override;

 private:
  void run_next();

  RunContext context_;
  std::deque<ChunkTask> queue_;
  std::vector<std::byte> out_;
  bool scheduled_ = false;
  std::atomic<std::uint32_t> stop_{0};
  std::shared_ptr<bool> active_;  // shared with posted handlers: false once the run stops
};

}  // namespace mpaio
