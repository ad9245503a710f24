#include "pool/local_pools.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <vector>

#include "pool/pool_core.hpp"

namespace mpaio::detail {

std::atomic<std::uint64_t> pool_fork_epoch{1};

namespace {

struct LocalPools {
  std::mutex mutex;
  std::map<std::uint64_t, PoolCore*> by_id;
  std::vector<PoolCore*> all;  // every core, also those whose id a later core took over in by_id
};

LocalPools& local_pools() {
  static LocalPools* const instance = [] {
    auto* pools = new LocalPools;  // never destroyed: pools may outlive static destruction, a fork may come then
    ::pthread_atfork(&LocalPoolsFork::prepare, &LocalPoolsFork::parent, &LocalPoolsFork::child);
    return pools;
  }();
  return *instance;
}

}  // namespace

void add_local_pool(PoolCore& core) {
  LocalPools& pools = local_pools();
  std::lock_guard lock(pools.mutex);
  pools.by_id[core.id()] = &core;
  pools.all.push_back(&core);
}

void remove_local_pool(PoolCore& core) noexcept {
  LocalPools& pools = local_pools();
  std::lock_guard lock(pools.mutex);
  std::erase(pools.all, &core);
  auto it = pools.by_id.find(core.id());
  if (it != pools.by_id.end() && it->second == &core) pools.by_id.erase(it);
}

std::size_t release_transfers_from(pid_t sender) noexcept {
  LocalPools& pools = local_pools();
  std::lock_guard lock(pools.mutex);  // the cores stay alive meanwhile
  std::size_t released = 0;
  for (PoolCore* core : pools.all) {
    try {
      released += core->release_transfers_from(sender);
    } catch (...) {  // a pool whose state cannot be recovered: its transfers stay for release_orphaned_transfers
    }
  }
  return released;
}

PoolCore* find_pool(std::uint64_t id) noexcept {
  LocalPools& pools = local_pools();
  std::lock_guard lock(pools.mutex);
  auto it = pools.by_id.find(id);
  return it == pools.by_id.end() ? nullptr : it->second;
}

void LocalPoolsFork::prepare() noexcept {
  LocalPools& pools = local_pools();
  pools.mutex.lock();
  for (PoolCore* core : pools.all) {
    core->register_mutex_.lock();
    core->local_mutex_.lock();
  }
}

void LocalPoolsFork::parent() noexcept {
  LocalPools& pools = local_pools();
  for (auto it = pools.all.rbegin(); it != pools.all.rend(); ++it) {
    (*it)->local_mutex_.unlock();
    (*it)->register_mutex_.unlock();
  }
  pools.mutex.unlock();
}

void LocalPoolsFork::child() noexcept {
  pool_fork_epoch.fetch_add(1, std::memory_order_relaxed);
  parent();  // the forking thread, the child's only thread, holds them all
}

}  // namespace mpaio::detail
