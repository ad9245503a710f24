#pragma once
// Test-only: points of the process layer where a test makes a step fail, to check what follows (a failure
// there must leave no process unwatched and no run hanging). Never set outside tests.

#include <atomic>

namespace mpaio::detail {

enum class ProcessFault {
  adopt,  ///< the supervisor takes a newly started process (watching it may fail: EMFILE...)
};

/// Called at each ProcessFault point; a hook that throws makes that step fail. nullptr: none.
using ProcessFaultHook = void (*)(ProcessFault);

inline std::atomic<ProcessFaultHook> process_fault_hook{nullptr};

/// Runs the test's hook, if any, at `point`.
inline void inject(ProcessFault point) {
  if (ProcessFaultHook hook = process_fault_hook.load(std::memory_order_relaxed)) hook(point);
}

}  // namespace mpaio::detail
