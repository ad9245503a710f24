#include "run_arrays.hpp"

#include <fmt/format.h>

#include "mpaio/detail/segment_registry.hpp"
#include "mpaio/error.hpp"
#include "process/chunk_protocol.hpp"  // kMaxDims: what a worker process accepts

namespace mpaio::detail {

std::uint32_t RunArrays::add(const ArrayMeta& meta, const DType& element_type, std::string_view user) {
  // The ArrayMeta checks and the attach name the array (or its segment) themselves: add only the user.
  auto fail_with = [&](const std::string& why) { return InvalidArgument(fmt::format("{}: {}", user, why)); };
  try {
    meta.check_dtype(element_type);
  } catch (const Error& e) {
    throw fail_with(e.what());
  }
  if (meta.shape.size() > kMaxDims) {
    throw fail_with(fmt::format("array {}: {} dimensions, at most {}", meta.shm_name, meta.shape.size(), kMaxDims));
  }
  for (std::uint32_t i = 0; i < arrays_.size(); ++i) {
    if (arrays_[i].meta == meta) return i;
  }
  auto segment = find_segment(meta.shm_name);
  if (!segment) {  // not held by this process: attach it for the duration of the run
    try {
      attached_.push_back(SharedMemory::attach(meta.shm_name, Access::read_only));
    } catch (const Error& e) {
      throw fail_with(fmt::format("cannot attach its array: {}", e.what()));
    }
    segment = find_segment(meta.shm_name);
  }
  try {
    meta.check_fits(segment->size);
  } catch (const Error& e) {
    throw fail_with(e.what());
  }
  fds_.push_back(dup_segment_fd(segment->key));
  arrays_.push_back(RunArray{meta, segment->key, fds_.back().get(), segment->size, segment->base + meta.offset});
  return static_cast<std::uint32_t>(arrays_.size() - 1);
}

}  // namespace mpaio::detail
