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

}  // namespace mpaio
