#pragma once
// The one wrapper every system call goes through: it retries EINTR and turns a failure into
// mpaio::SystemError naming the call, the arguments that matter and errno.

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "mpaio/error.hpp"

namespace mpaio::detail {

/// Formats "call(k1=v1, k2=v2)" for an error message; only runs when a call failed.
template <class... Args>
std::string describe_call(std::string_view call, const Args&... key_values) {
  static_assert(sizeof...(Args) % 2 == 0, "arguments come as name, value pairs");
  std::string out{call};
  out += '(';
  bool first = true;
  bool is_key = true;
  [[maybe_unused]] auto add = [&](const auto& part) {  // unused when there are no arguments
    if (is_key) {
      if (!first) out += ", ";
      first = false;
      fmt::format_to(std::back_inserter(out), "{}=", part);
    } else {
      fmt::format_to(std::back_inserter(out), "{}", part);
    }
    is_key = !is_key;
  };
  (add(key_values), ...);
  out += ')';
  return out;
}

/// Calls `fn` (a system call returning -1 and setting errno on failure), retrying on EINTR.
/// Throws SystemError naming `call` and the `name, value` pairs in `key_values`.
template <class Fn, class... Args>
auto sys(std::string_view call, Fn&& fn, const Args&... key_values) {
  for (;;) {
    auto rc = fn();
    if (rc != -1) return rc;
    const int err = errno;
    if (err == EINTR) continue;
    throw SystemError(describe_call(call, key_values...), err);
  }
}

/// Like sys() for calls that return an errno value instead of setting errno (posix_fallocate, pthread_*).
template <class Fn, class... Args>
void sys_errno_result(std::string_view call, Fn&& fn, const Args&... key_values) {
  for (;;) {
    const int err = fn();
    if (err == 0) return;
    if (err == EINTR) continue;
    throw SystemError(describe_call(call, key_values...), err);
  }
}

}  // namespace mpaio::detail
