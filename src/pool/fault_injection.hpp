#pragma once
// The test-only fault hook (set_pool_fault_hook) as the pool's parts call it.

#include <atomic>

#include "mpaio/detail/pool_access.hpp"

namespace mpaio::detail {

inline std::atomic<PoolFaultHook> pool_fault_hook{nullptr};

/// Calls the fault hook, if a test installed one, at `point`.
inline void inject_fault(PoolFaultPoint point) {
  if (auto hook = pool_fault_hook.load(std::memory_order_relaxed)) hook(point);
}

}  // namespace mpaio::detail
