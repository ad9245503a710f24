#include "process/forking.hpp"

#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include <spdlog/details/registry.h>
#include <spdlog/spdlog.h>

#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/detail/syscall.hpp"
#include "mpaio/detail/worker_registry.hpp"
#include "mpaio/fork_hooks.hpp"

namespace mpaio {

namespace {

struct HookTable {
  std::mutex mutex;
  unsigned long next_id = 1;
  std::vector<std::pair<unsigned long, ForkHooks>> hooks;  // in registration order
};

HookTable& hook_table() {
  static auto* table = new HookTable;  // never destroyed: a pool may fork during static destruction
  return *table;
}

}  // namespace

ForkHooksRegistration::ForkHooksRegistration(ForkHooks hooks) {
  auto& table = hook_table();
  std::lock_guard lock(table.mutex);
  id_ = table.next_id++;
  table.hooks.emplace_back(id_, std::move(hooks));
}

ForkHooksRegistration::~ForkHooksRegistration() {
  auto& table = hook_table();
  std::lock_guard lock(table.mutex);
  std::erase_if(table.hooks, [&](const auto& entry) { return entry.first == id_; });
}

namespace detail {

namespace {

/// Calls fork() while holding spdlog's logger registry lock: the registry holds it while it walks its
/// loggers, and a periodic flusher thread walks them. Without a logger to walk, forks without it.
pid_t fork_holding_spdlog_registry() {
  pid_t pid = -2;
  spdlog::details::registry::instance().apply_all([&](const std::shared_ptr<spdlog::logger>&) {
    if (pid == -2) pid = ::fork();
  });
  if (pid == -2) pid = ::fork();
  return pid;
}

}  // namespace

pid_t fork_with_hooks(const char* role) {
  auto& table = hook_table();
  std::vector<ForkHooks> hooks;
  {
    std::lock_guard lock(table.mutex);
    for (const auto& entry : table.hooks) hooks.push_back(entry.second);
  }
  for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) {
    if (it->prepare) it->prepare();
  }
  pid_t pid = -1;
  int error = 0;
  {
    std::lock_guard hooks_lock(table.mutex);
    auto segments_lock = lock_segment_registry();
    auto workers_lock = lock_worker_registry();
    pid = fork_holding_spdlog_registry();
    error = errno;
  }
  for (const ForkHooks& h : hooks) {
    if (pid == 0 ? static_cast<bool>(h.child) : static_cast<bool>(h.parent)) (pid == 0 ? h.child : h.parent)();
  }
  if (pid < 0) throw SystemError(describe_call("fork", "role", role), error);
  return pid;
}

}  // namespace detail
}  // namespace mpaio
