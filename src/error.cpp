#include "mpaio/error.hpp"

#include <cstring>

#include <fmt/format.h>

namespace mpaio {

namespace {
std::string system_message(const std::string& call, int errnum, const std::string& detail) {
  std::string msg = fmt::format("{} failed: {}", call, std::strerror(errnum));
  if (!detail.empty()) msg += fmt::format(" ({})", detail);
  return msg;
}
}  // namespace

SystemError::SystemError(std::string call, int errnum, const std::string& detail)
    : Error(system_message(call, errnum, detail)),
      call_(std::move(call)),
      code_(errnum, std::generic_category()) {}

OutOfSharedMemory::OutOfSharedMemory(std::string call, int errnum, std::uint64_t requested,
                                     std::uint64_t available)
    : SystemError(std::move(call), errnum,
                  fmt::format("requested {} bytes of shared memory, {} available", requested, available)),
      requested_(requested),
      available_(available) {}

ChunkError::ChunkError(std::string worker_type, Range range, std::uint32_t slot, pid_t pid, std::string cause_type,
                       std::string cause, std::exception_ptr original)
    : Error(fmt::format("{} chunk [{}, {}) failed in worker {} (pid {}): {}{}{}", worker_type, range.start, range.end,
                        slot, pid, cause_type, cause_type.empty() ? "" : ": ", cause)),
      worker_type_(std::move(worker_type)),
      range_(range),
      slot_(slot),
      pid_(pid),
      cause_type_(std::move(cause_type)),
      cause_(std::move(cause)),
      original_(std::move(original)) {}

}  // namespace mpaio
