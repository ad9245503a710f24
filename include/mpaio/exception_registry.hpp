#pragma once
/// @file exception_registry.hpp
/// register_exception<E>(): an exception of type E thrown by `process` reaches the caller as an E (through
/// ChunkError::original()), not only as its type name and message.

#include <concepts>
#include <cstddef>
#include <exception>
#include <span>
#include <string>
#include <typeinfo>
#include <vector>

#include "mpaio/codec.hpp"
#include "mpaio/detail/chunk_call.hpp"

namespace mpaio {

namespace detail {

/// How one registered exception type travels: encoded where it is caught, rebuilt where the run is.
struct ExceptionCodec {
  const std::type_info* type = nullptr;
  /// Appends the encoding of `error`, an exception of exactly `type`, to `out`.
  void (*encode)(const std::exception_ptr& error, std::vector<std::byte>& out) = nullptr;
  /// Rebuilds the exception from its encoding; throws DecodeError when the bytes are malformed.
  std::exception_ptr (*decode)(std::span<const std::byte> in) = nullptr;
};

/// Registers `codec` under `name`; see register_exception.
void add_exception_codec(const std::string& name, const ExceptionCodec& codec);

/// The exception being handled (call it inside a catch block) encoded with its registered name, or nothing
/// when its exact type is not registered in this process or encoding it failed.
std::vector<std::byte> encode_current_exception() noexcept;

/// Rebuilds an exception from the bytes of encode_current_exception(): null for no bytes, or for a name no
/// type is registered under in this process. Throws DecodeError when the bytes are malformed.
std::exception_ptr decode_exception(std::span<const std::byte> payload);

/// Whether E can be registered: the codec carries it (codec.hpp), or it is a std::exception that can be
/// made again from its what() string.
template <class E>
inline constexpr bool transportable_exception =
    Encodable<E> || (std::derived_from<E, std::exception> && std::constructible_from<E, std::string>);

}  // namespace detail

/// Makes exceptions of type E thrown by `process` (or `init`) come back to the caller as themselves:
/// ChunkError::original() and rethrow_original(), and std::rethrow_if_nested() on the ChunkError, give the E.
///
/// E must be Encodable with Codec (trivially copyable, or with a cereal `serialize` function: its fields
/// travel), or derive from std::exception and be constructible from a std::string (it is made again from
/// its what()); Codec is used when both hold. Only an exception of exactly type E is carried: a type derived
/// from E needs its own registration. Other types are reported as before, as a ChunkError with the type's
/// name and message.
///
/// `name` identifies the type between processes, so it must be the same wherever the program runs (the
/// default, the demangled type name, is); a name names one type and a type has one name (InvalidArgument
/// otherwise); registering the same pair again does nothing. Register in both places a chunk's exception
/// passes through: where it is thrown and where the run is. For a ProcessPoolExecutor that means before
/// the pool is made (its worker processes are copies of the program as it was then), e.g. at the start of
/// main(). Thread-safe.
template <class E>
void register_exception(const std::string& name = detail::demangle(typeid(E).name())) {
  static_assert(detail::transportable_exception<E>,
                "mpaio::register_exception<E>: E must be Encodable (trivially copyable, a cereal serialize "
                "function, or a Codec specialisation), or derive from std::exception and be constructible from "
                "std::string (its what())");
  detail::ExceptionCodec codec;
  codec.type = &typeid(E);
  codec.encode = [](const std::exception_ptr& error, std::vector<std::byte>& out) {
    try {
      std::rethrow_exception(error);
    } catch (const E& e) {
      if constexpr (Encodable<E>) {
        Codec<E>::encode(e, out);
      } else {
        Codec<std::string>::encode(e.what(), out);
      }
    }
  };
  codec.decode = [](std::span<const std::byte> in) -> std::exception_ptr {
    if constexpr (Encodable<E>) {
      return std::make_exception_ptr(Codec<E>::decode(in));
    } else {
      return std::make_exception_ptr(E(Codec<std::string>::decode(in)));
    }
  };
  detail::add_exception_codec(name, codec);
}

}  // namespace mpaio
