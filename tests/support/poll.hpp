#pragma once
// Test helper: wait for a condition with a bound, so that a broken engine fails a test instead of hanging it.

#include <chrono>
#include <thread>

namespace mpaio_test {

/// Calls `ready()` every `step` until it returns true or `limit` passes; returns whether it held (it is asked
/// once more at the deadline). The limit is a safety net against hangs, never a timing assertion.
template <class Ready>
bool poll_until(Ready&& ready, std::chrono::milliseconds limit,
                std::chrono::microseconds step = std::chrono::microseconds(500)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (ready()) return true;
    if (std::chrono::steady_clock::now() > deadline) return static_cast<bool>(ready());
    std::this_thread::sleep_for(step);
  }
}

}  // namespace mpaio_test
