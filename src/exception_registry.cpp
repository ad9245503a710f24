#include "mpaio/exception_registry.hpp"

#include <cxxabi.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <typeindex>
#include <unordered_map>

#include <fmt/format.h>

#include "mpaio/error.hpp"

namespace mpaio::detail {

namespace {

/// The registered types, by name (for decoding) and by type (for encoding).
struct Registry {
  std::mutex mutex;
  std::map<std::string, ExceptionCodec, std::less<>> by_name;
  std::unordered_map<std::type_index, std::string> name_of;
};

Registry& registry() {
  static Registry instance;
  return instance;
}

// A payload is the name's length (4 bytes, little-endian like everything mpaio writes), the name, then the
// exception as its codec encoded it.
constexpr std::size_t kLengthBytes = sizeof(std::uint32_t);

}  // namespace

void add_exception_codec(const std::string& name, const ExceptionCodec& codec) {
  if (name.empty()) {
    throw InvalidArgument(fmt::format("register_exception<{}>: the name is empty", demangle(codec.type->name())));
  }
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  if (const auto it = r.by_name.find(name); it != r.by_name.end()) {
    if (*it->second.type == *codec.type) return;  // the same pair again
    throw InvalidArgument(fmt::format("register_exception<{}>: the name \"{}\" is taken by {}",
                                      demangle(codec.type->name()), name, demangle(it->second.type->name())));
  }
  if (const auto it = r.name_of.find(*codec.type); it != r.name_of.end()) {
    throw InvalidArgument(fmt::format("register_exception<{}>: the type is registered as \"{}\", not \"{}\"",
                                      demangle(codec.type->name()), it->second, name));
  }
  r.by_name.emplace(name, codec);
  r.name_of.emplace(*codec.type, name);
}

std::vector<std::byte> encode_current_exception() noexcept {
  try {
    const std::type_info* type = abi::__cxa_current_exception_type();
    if (type == nullptr) return {};
    std::string name;
    ExceptionCodec codec;
    {
      Registry& r = registry();
      std::lock_guard lock(r.mutex);
      const auto it = r.name_of.find(*type);
      if (it == r.name_of.end()) return {};
      name = it->second;
      codec = r.by_name.at(name);
    }
    std::vector<std::byte> out(kLengthBytes);
    const auto length = static_cast<std::uint32_t>(name.size());
    std::memcpy(out.data(), &length, kLengthBytes);
    append_bytes(out, name.data(), name.size());
    codec.encode(std::current_exception(), out);
    return out;
  } catch (...) {  // an encoder that throws, or no memory: the failure still travels as its type and message
    return {};
  }
}

std::exception_ptr decode_exception(std::span<const std::byte> payload) {
  if (payload.empty()) return nullptr;
  if (payload.size() < kLengthBytes) {
    throw DecodeError(fmt::format("exception record of {} bytes ends before its name's length", payload.size()));
  }
  std::uint32_t length = 0;
  std::memcpy(&length, payload.data(), kLengthBytes);
  if (length > payload.size() - kLengthBytes) {
    throw DecodeError(fmt::format("exception record claims a name of {} bytes with only {} left", length,
                                  payload.size() - kLengthBytes));
  }
  const std::string_view name(reinterpret_cast<const char*>(payload.data() + kLengthBytes), length);
  ExceptionCodec codec;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    const auto it = r.by_name.find(name);
    if (it == r.by_name.end()) return nullptr;
    codec = it->second;
  }
  const auto encoded = payload.subspan(kLengthBytes + length);
  try {
    return codec.decode(encoded);
  } catch (const DecodeError& e) {
    throw DecodeError(fmt::format("exception record of \"{}\": {}", name, e.what()));
  } catch (const std::exception& e) {
    throw DecodeError(fmt::format("exception record of \"{}\" could not be decoded: {}", name, e.what()));
  }
}

}  // namespace mpaio::detail
