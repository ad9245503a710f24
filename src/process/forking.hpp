#pragma once
// Every fork() mpaio makes goes through here: the user's ForkHooks around it, and the process-wide locks
// other threads may hold (mpaio's segment registry, spdlog's logger registry) taken across it, so that the
// child never inherits one of them locked by a thread it does not have.

#include <sys/types.h>

namespace mpaio::detail {

/// fork() with the registered ForkHooks around it and the process-wide locks held; returns fork()'s
/// result (in the child, the hooks' `child` callbacks have run). Throws SystemError when fork() fails.
pid_t fork_with_hooks(const char* role);

}  // namespace mpaio::detail
