#include "mpaio/detail/chunk_call.hpp"

#include <cxxabi.h>
#include <time.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <typeinfo>

#include "mpaio/exception_registry.hpp"

namespace mpaio::detail {

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> name(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

void describe_current_exception(std::string& type, std::string& message) {
  try {
    throw;
  } catch (const std::exception& e) {
    type = demangle(typeid(e).name());
    message = e.what();
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    type = t != nullptr ? demangle(t->name()) : "unknown exception";
    message = "exception not derived from std::exception";
  }
}

ChunkExecution execute_chunk(ChunkFn fn, const ChunkCall& call) noexcept {
  ChunkExecution result;
  const std::size_t out_size = call.out->size();
  result.start_ns = monotonic_ns();
  try {
    try {
      fn(call);
    } catch (...) {
      result.failed = true;
      describe_current_exception(result.error_type, result.error_message);
      result.failure_payload = encode_current_exception();
    }
  } catch (...) {  // building the message itself failed (out of memory)
    result.failed = true;
  }
  result.end_ns = monotonic_ns();
  if (result.failed) call.out->resize(out_size);
  return result;
}

}  // namespace mpaio::detail
