#include "mpaio/shared_memory_pool.hpp"

#include <fmt/format.h>

#include "pool/pool_core.hpp"

namespace mpaio {

SharedMemoryPool::SharedMemoryPool(std::unique_ptr<detail::PoolCore> core) : core_(std::move(core)) {
  core_->object = this;
}

SharedMemoryPool SharedMemoryPool::create(PoolOptions options) {
  if (options.max_blocks < 2 || options.max_references < 1 || options.max_segments < 1) {
    throw InvalidArgument("SharedMemoryPool::create: max_blocks, max_references and max_segments must be positive");
  }
  if (options.segment_size > kPoolMaxArrayBytes) {
    throw InvalidArgument(fmt::format("SharedMemoryPool::create: segment_size {} is larger than the largest block ({} "
                                      "bytes)", options.segment_size, kPoolMaxArrayBytes));
  }
  const std::size_t size = detail::pool::control_size_for(options);
  SharedMemory control = SharedMemory::create(size, {.kind = options.kind});
  detail::pool::format_control(*reinterpret_cast<detail::pool::ControlHeader*>(control.data()), options, size);
  SharedMemoryPool pool(std::make_unique<detail::PoolCore>(std::move(control), true));
  pool.core_->add_first_segment();  // held by the owner, so that it outlives any worker
  if (options.watch_processes) pool.core_->start_watcher();
  return pool;
}

SharedMemoryPool SharedMemoryPool::attach(std::string_view name) {
  return SharedMemoryPool(std::make_unique<detail::PoolCore>(SharedMemory::attach(name, Access::read_write), false));
}

SharedMemoryPool::SharedMemoryPool(SharedMemoryPool&& other) noexcept : core_(std::move(other.core_)) {
  if (core_) core_->object = this;
}

SharedMemoryPool& SharedMemoryPool::operator=(SharedMemoryPool&& other) noexcept {
  if (this != &other) {
    core_ = std::move(other.core_);
    if (core_) core_->object = this;
  }
  return *this;
}

SharedMemoryPool::~SharedMemoryPool() = default;

std::size_t SharedMemoryPool::checked_bytes(std::span<const std::size_t> shape, std::size_t itemsize,
                                            std::array<std::uint64_t, kPoolMaxDims>& extents) {
  if (shape.size() > kPoolMaxDims) {
    throw InvalidArgument(fmt::format("SharedMemoryPool::allocate: {} dimensions, at most {}", shape.size(), kPoolMaxDims));
  }
  std::size_t bytes = itemsize;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    extents[i] = shape[i];
    if (__builtin_mul_overflow(bytes, shape[i], &bytes)) {
      throw InvalidArgument("SharedMemoryPool::allocate: the shape's size overflows");
    }
  }
  if (bytes == 0) throw InvalidArgument("SharedMemoryPool::allocate: the shape has no elements (size 0)");
  return bytes;
}

void SharedMemoryPool::drop(const PoolTransfer& transfer) { core_->drop(transfer); }
std::size_t SharedMemoryPool::reclaim_dead() { return core_->reclaim_dead(); }
std::size_t SharedMemoryPool::release_orphaned_transfers() { return core_->release_orphaned_transfers(); }
void SharedMemoryPool::check_invariants() const { core_->check_invariants(); }
PoolStats SharedMemoryPool::stats() const { return core_->stats(); }
const std::string& SharedMemoryPool::name() const noexcept { return core_->name(); }
std::uint64_t SharedMemoryPool::id() const noexcept { return core_->id(); }
pid_t SharedMemoryPool::owner() const noexcept { return core_->owner_pid(); }
bool SharedMemoryPool::watching() const noexcept { return core_->watching(); }

SharedMemoryPool* SharedMemoryPool::find(std::uint64_t id) noexcept {
  detail::PoolCore* core = detail::find_pool(id);
  return core == nullptr ? nullptr : core->object;
}

}  // namespace mpaio
