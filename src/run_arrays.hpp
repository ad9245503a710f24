#pragma once
// RunArrays: the arrays a run reads, resolved in the calling process. Each distinct array is checked once
// (element type, dimensions, that it fits its segment), its segment attached when this process does not
// hold it already, and its descriptor kept open for the run, so that executors can pass it to other
// processes. Anything that hands chunks of arrays to an executor (WorkerOrchestrator today) resolves its
// arrays here.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "mpaio/array_meta.hpp"
#include "mpaio/detail/unique_fd.hpp"
#include "mpaio/dtype.hpp"
#include "mpaio/executor.hpp"
#include "mpaio/shared_memory.hpp"

namespace mpaio::detail {

class RunArrays {
 public:
  /// The index of `meta`'s array among the run's arrays, added on first use. Throws InvalidArgument that
  /// names `user` (the worker type) and the array when the array holds other elements than `element_type`,
  /// has more dimensions than a worker process accepts, cannot be attached or does not fit its segment.
  std::uint32_t add(const ArrayMeta& meta, const DType& element_type, std::string_view user);

  /// Valid while this object lives; descriptors included.
  [[nodiscard]] std::span<const RunArray> arrays() const noexcept { return arrays_; }

 private:
  std::vector<SharedMemory> attached_;  // segments this process did not hold, attached for the run
  std::vector<UniqueFd> fds_;
  std::vector<RunArray> arrays_;
};

}  // namespace mpaio::detail
