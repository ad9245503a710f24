#pragma once
/// @file pool_array.hpp
/// PoolArray<T>: a typed N-d array in a SharedMemoryPool; PoolArrayRef and PoolTransfer: how it travels.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "mpaio/array_meta.hpp"
#include "mpaio/array_view.hpp"
#include "mpaio/codec.hpp"
#include "mpaio/detail/pool_access.hpp"
#include "mpaio/dtype.hpp"
#include "mpaio/pool_error.hpp"
#include "mpaio/range.hpp"

namespace mpaio {

/// Most dimensions a pool array may have.
inline constexpr std::size_t kPoolMaxDims = 8;

/// Largest array a pool holds, in bytes: 2^49 - 2^44 (about 496 TiB), the largest block its allocator's
/// size classes reach. SharedMemoryPool rejects larger arrays and segments with InvalidArgument.
inline constexpr std::size_t kPoolMaxArrayBytes = (std::size_t{1} << 49) - (std::size_t{1} << 44);

/// Identifies an array (or a row range of one) in a pool: pool, segment, block, generation, byte offset,
/// dtype and shape. Trivially copyable: send it in a task or a result; SharedMemoryPool::attach turns it
/// back into a PoolArray in well under a microsecond, or fails with StalePoolReference once the block was
/// freed.
struct PoolArrayRef {
  std::uint64_t pool_id = 0;     ///< the pool's random 64-bit id
  std::uint32_t segment = 0;     ///< data segment index
  std::uint32_t block = 0;       ///< block descriptor index
  std::uint32_t generation = 0;  ///< generation the block had when the array was allocated
  std::uint32_t ndim = 0;        ///< number of dimensions
  std::uint64_t offset = 0;      ///< bytes from the block start to element 0 (non-zero for row slices)
  DType dtype;                   ///< element type
  std::array<std::uint64_t, kPoolMaxDims> shape{};  ///< extents; the first `ndim` count

  /// Bytes the elements occupy; SIZE_MAX when ndim exceeds kPoolMaxDims or the size overflows (a
  /// malformed reference, which SharedMemoryPool rejects naming the field).
  [[nodiscard]] std::size_t nbytes() const noexcept {
    if (ndim > kPoolMaxDims) return SIZE_MAX;
    std::size_t n = dtype.itemsize;
    for (std::uint32_t i = 0; i < ndim; ++i) {
      if (__builtin_mul_overflow(n, shape[i], &n)) return SIZE_MAX;
    }
    return n;
  }
};
static_assert(std::is_trivially_copyable_v<PoolArrayRef>);

/// A pool array in flight: the sender took a reference for it before the message left, and the receiver
/// adopts that reference (SharedMemoryPool::adopt) or drops it. Until then the block stays alive; if the
/// addressed receiver dies or leaves the pool first, the reference is released with its slot. Adopting
/// twice fails with StalePoolReference. Trivially copyable.
struct PoolTransfer {
  PoolArrayRef array;          ///< the array
  std::uint32_t record = 0;    ///< the in-flight reference record
  std::uint32_t reserved = 0;  ///< zero
  std::uint64_t serial = 0;    ///< the record's serial number, so that a token is good once
};
static_assert(std::is_trivially_copyable_v<PoolTransfer>);

class SharedMemoryPool;

/// A move-only owner of one reference to a row-major array of T in a SharedMemoryPool.
///
/// The block is freed when the last reference goes, whichever process holds it. Destroying a handle
/// inherited through fork() does nothing (the reference belongs to the parent). The pool must outlive its
/// arrays. Contents of a fresh allocation are unspecified (SharedMemoryPool::zeros fills with zeros).
template <Element T>
class PoolArray {
 public:
  /// An empty handle.
  PoolArray() = default;
  PoolArray(PoolArray&& other) noexcept { take(other); }
  PoolArray& operator=(PoolArray&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  PoolArray(const PoolArray&) = delete;
  PoolArray& operator=(const PoolArray&) = delete;
  ~PoolArray() { reset(); }

  /// Drops this handle's reference now (the block is freed if it was the last one).
  void reset() noexcept {
    if (core_ != nullptr && epoch_ == detail::pool_fork_epoch.load(std::memory_order_relaxed)) {
      detail::pool_release(*core_, block_.record);
    }
    core_ = nullptr;
  }
  /// Whether this handle holds an array.
  [[nodiscard]] explicit operator bool() const noexcept { return core_ != nullptr; }

  [[nodiscard]] T* data() noexcept { return data_; }
  [[nodiscard]] const T* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t nbytes() const noexcept { return size_ * sizeof(T); }
  [[nodiscard]] std::span<const std::size_t> shape() const noexcept { return {shape_.data(), ndim_}; }
  [[nodiscard]] T& operator[](std::size_t i) noexcept { return data_[i]; }
  [[nodiscard]] const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  [[nodiscard]] T* begin() noexcept { return data_; }
  [[nodiscard]] T* end() noexcept { return data_ + size_; }
  [[nodiscard]] const T* begin() const noexcept { return data_; }
  [[nodiscard]] const T* end() const noexcept { return data_ + size_; }
  [[nodiscard]] ArrayView<T> view() noexcept { return {data_, shape()}; }
  [[nodiscard]] ArrayView<const T> view() const noexcept { return {data_, shape()}; }

  /// The ArrayMeta of the array (data segment name and byte offset in it): what the orchestrator, other
  /// processes of this pool and numpy (named pools) use. Holding it takes no reference. Throws
  /// InvalidArgument on an empty handle.
  [[nodiscard]] ArrayMeta meta() const {
    require_array("meta");
    return ArrayMeta{detail::pool_segment_name(*core_, block_.segment), dtype_of<T>(),
                     std::vector<std::size_t>(shape_.begin(), shape_.begin() + ndim_),
                     static_cast<std::size_t>(block_.offset + byte_offset_)};
  }
  /// The reference that identifies this array for SharedMemoryPool::attach. Throws InvalidArgument on an
  /// empty handle.
  [[nodiscard]] PoolArrayRef ref() const {
    require_array("ref");
    PoolArrayRef r;
    r.pool_id = detail::pool_id(*core_);
    r.segment = block_.segment;
    r.block = block_.block;
    r.generation = block_.generation;
    r.ndim = static_cast<std::uint32_t>(ndim_);
    r.offset = byte_offset_;
    r.dtype = dtype_of<T>();
    std::copy(shape_.begin(), shape_.begin() + ndim_, r.shape.begin());
    return r;
  }
  /// A reference to rows [rows.start, rows.end) of the first axis; throws InvalidArgument past the end or
  /// on an empty handle.
  [[nodiscard]] PoolArrayRef ref(Range rows) const {
    require_array("ref");
    const std::size_t total = ndim_ == 0 ? 1 : shape_[0];
    if (rows.start > rows.end || rows.end > total) {
      throw InvalidArgument("PoolArray::ref: rows [" + std::to_string(rows.start) + ", " + std::to_string(rows.end) +
                            ") of " + std::to_string(total));
    }
    PoolArrayRef r = ref();
    const std::size_t row = ndim_ == 0 ? 1 : size_ / std::max<std::size_t>(total, 1);
    r.offset += rows.start * row * sizeof(T);
    if (r.ndim == 0) r.ndim = 1;
    r.shape[0] = rows.size();
    return r;
  }

 private:
  friend class SharedMemoryPool;
  friend struct Codec<PoolArray<T>>;

  /// Wraps a reference just taken in this process; `ref` gives the view (offset, shape).
  PoolArray(detail::PoolCore& core, const detail::PoolBlock& block, std::span<const std::uint64_t> shape,
            std::uint64_t byte_offset)
      : core_(&core), block_(block), byte_offset_(byte_offset),
        epoch_(detail::pool_fork_epoch.load(std::memory_order_relaxed)) {
    ndim_ = shape.size();
    size_ = 1;
    for (std::size_t i = 0; i < ndim_; ++i) size_ *= (shape_[i] = static_cast<std::size_t>(shape[i]));
    data_ = reinterpret_cast<T*>(block_.data + byte_offset_);
  }
  void require_array(const char* what) const {
    if (core_ == nullptr) {
      throw InvalidArgument(std::string("PoolArray::") + what +
                            ": the handle is empty (default-constructed, moved from or reset)");
    }
  }
  void take(PoolArray& other) noexcept {
    core_ = std::exchange(other.core_, nullptr);
    block_ = other.block_;
    shape_ = other.shape_;
    ndim_ = other.ndim_;
    size_ = other.size_;
    byte_offset_ = other.byte_offset_;
    epoch_ = other.epoch_;
    data_ = other.data_;
  }

  detail::PoolCore* core_ = nullptr;
  detail::PoolBlock block_{};
  std::array<std::size_t, kPoolMaxDims> shape_{};
  std::size_t ndim_ = 0;
  std::size_t size_ = 0;
  std::uint64_t byte_offset_ = 0;
  std::uint64_t epoch_ = 0;
  T* data_ = nullptr;
};

/// A PoolArray returned by a worker's `process` travels as a PoolTransfer addressed to the pool's owner:
/// encoding takes the in-flight reference (the worker's own handle is then dropped), decoding adopts it in
/// the receiving process, which must hold the same pool (created before the executor, or attached).
template <Element T>
struct Codec<PoolArray<T>> {
  static void encode(const PoolArray<T>& value, std::vector<std::byte>& out) {
    if (!value) throw InvalidArgument("Codec<PoolArray>: an empty PoolArray cannot be sent");
    const PoolTransfer t = detail::pool_send(*value.core_, value.block_.record, value.ref(), 0);
    detail::append_bytes(out, &t, sizeof t);
  }
  /// Adopts the transfer. A result that cannot be adopted (wrong dtype, malformed, a segment that cannot
  /// be mapped) has its transfer dropped before the error, so that its block does not stay in flight.
  static PoolArray<T> decode(std::span<const std::byte> in) {
    if (in.size() != sizeof(PoolTransfer)) detail::throw_size_mismatch("PoolTransfer", sizeof(PoolTransfer), in.size());
    PoolTransfer t;
    std::memcpy(&t, in.data(), sizeof t);
    detail::PoolCore* core = detail::find_pool(t.array.pool_id);
    if (core == nullptr) throw DecodeError("Codec<PoolArray>: the result names a pool this process does not hold");
    detail::PoolBlock block;
    try {
      if (t.array.dtype != dtype_of<T>()) {
        throw DecodeError("Codec<PoolArray>: the result holds " + t.array.dtype.typestr() + ", not " +
                          dtype_of<T>().typestr());
      }
      if (t.array.ndim > kPoolMaxDims) {
        throw DecodeError("Codec<PoolArray>: the result has ndim " + std::to_string(t.array.ndim) + ", at most " +
                          std::to_string(kPoolMaxDims));
      }
      block = detail::pool_adopt(*core, t);
    } catch (...) {
      detail::pool_discard(*core, t);  // does nothing if the token was not good (already adopted, dropped)
      throw;
    }
    return PoolArray<T>(*core, block, std::span<const std::uint64_t>(t.array.shape.data(), t.array.ndim), t.array.offset);
  }
};

}  // namespace mpaio
