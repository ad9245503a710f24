#pragma once
/// @file fork_hooks.hpp
/// Callbacks around every fork mpaio makes, for runtimes that embed mpaio and must keep their own state
/// consistent across fork() (an interpreter's locks and thread state, stdio buffers).

#include <functional>

namespace mpaio {

/// Callbacks run around each fork() mpaio makes: when a pool forks its fork server (in the caller), and when
/// the fork server forks a worker (in the fork server). Like pthread_atfork's handlers, but only for mpaio's
/// forks; each may be empty.
struct ForkHooks {
  /// In the forking process, just before fork(). Hooks registered later run first (as pthread_atfork).
  std::function<void()> prepare;
  /// In the forking process, just after fork(), whether it succeeded or not.
  std::function<void()> parent;
  /// First thing in the new process, before mpaio's own set-up of it.
  std::function<void()> child;
};

/// Registers `hooks` for every fork mpaio makes from now on, in every pool of this process, until the
/// returned registration is destroyed. Thread-safe. A fork server inherits the hooks registered when it was
/// forked; registering later does not reach the fork servers of existing pools.
class ForkHooksRegistration {
 public:
  explicit ForkHooksRegistration(ForkHooks hooks);
  ~ForkHooksRegistration();
  ForkHooksRegistration(const ForkHooksRegistration&) = delete;
  ForkHooksRegistration& operator=(const ForkHooksRegistration&) = delete;

 private:
  unsigned long id_;
};

}  // namespace mpaio
