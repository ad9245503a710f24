#pragma once
/// @file stop_token.hpp
/// StopToken: lets a long chunk see that its run is being cancelled and end early.

#include <atomic>
#include <cstdint>

namespace mpaio {

/// Read inside `process` (declare it as `process(ArrayView<const T>, Range, const StopToken&)`): true once
/// the run is cancelled. A chunk that checks it can return a partial result early, and that result still
/// reaches its callback; chunks still running after OrchestratorOptions::cancel_grace are stopped.
class StopToken {
 public:
  StopToken() = default;
  explicit StopToken(const std::atomic<std::uint32_t>* flag) noexcept : flag_(flag) {}
  /// Whether the run wants this chunk to end now.
  [[nodiscard]] bool stop_requested() const noexcept {
    return flag_ != nullptr && flag_->load(std::memory_order_relaxed) != 0;
  }

 private:
  const std::atomic<std::uint32_t>* flag_ = nullptr;
};

}  // namespace mpaio
