#pragma once
/// @file codec.hpp
/// Codec<T>: how a chunk result travels from a worker to the calling process as bytes.
///
/// Built in: trivially copyable types (their bytes), std::string, std::vector of trivially copyable
/// types, and any type with a cereal `serialize` (or `save`/`load`) function. Specialise Codec for
/// other types. Decoding is bounds-checked: a malformed record throws DecodeError, never reads past it.

#include <array>
#include <bit>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "mpaio/error.hpp"

namespace mpaio {

namespace detail {

/// Appends raw bytes to `out`.
inline void append_bytes(std::vector<std::byte>& out, const void* data, std::size_t size) {
  if (size == 0) return;  // `data` may be null (an empty vector's)
  // resize + memcpy rather than insert: GCC 12 at -O3 reports a false -Wstringop-overflow in insert's
  // reallocation path.
  const std::size_t old = out.size();
  out.resize(old + size);
  std::memcpy(out.data() + old, data, size);
}

/// cereal output archive that appends to a byte vector.
class ByteOutputArchive : public cereal::OutputArchive<ByteOutputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit ByteOutputArchive(std::vector<std::byte>& out)
      : cereal::OutputArchive<ByteOutputArchive, cereal::AllowEmptyClassElision>(this), out_(out) {}
  void saveBinary(const void* data, std::size_t size) { append_bytes(out_, data, size); }

 private:
  std::vector<std::byte>& out_;
};

/// cereal input archive over a byte span that never reads past its end and rejects a container length
/// larger than the bytes left (so a corrupt length cannot trigger a huge allocation).
class ByteInputArchive : public cereal::InputArchive<ByteInputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit ByteInputArchive(std::span<const std::byte> in)
      : cereal::InputArchive<ByteInputArchive, cereal::AllowEmptyClassElision>(this), in_(in) {}
  void loadBinary(void* data, std::size_t size) {
    if (size > in_.size()) {
      throw DecodeError("result record ends early: " + std::to_string(size) + " bytes wanted, " +
                        std::to_string(in_.size()) + " left");
    }
    if (size == 0) return;  // `data` may then be null (an empty vector's), which memcpy must never get
    std::memcpy(data, in_.data(), size);
    in_ = in_.subspan(size);
  }
  [[nodiscard]] std::size_t remaining() const noexcept { return in_.size(); }

 private:
  std::span<const std::byte> in_;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(ByteOutputArchive& ar, const T& t) {
  ar.saveBinary(std::addressof(t), sizeof t);
}
template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(ByteInputArchive& ar, T& t) {
  ar.loadBinary(std::addressof(t), sizeof t);
}
/// A bool travels as one byte that must be 0 or 1: any other byte would make an invalid bool.
inline void CEREAL_LOAD_FUNCTION_NAME(ByteInputArchive& ar, bool& t) {
  static_assert(sizeof(bool) == 1);
  unsigned char byte = 0;
  ar.loadBinary(&byte, 1);
  if (byte > 1) throw DecodeError("result record holds " + std::to_string(byte) + " for a bool");
  t = byte == 1;
}
template <class Archive, class T>
CEREAL_ARCHIVE_RESTRICT(ByteInputArchive, ByteOutputArchive)
CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(ByteOutputArchive& ar, const cereal::SizeTag<T>& t) {
  ar(t.size);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(ByteInputArchive& ar, cereal::SizeTag<T>& t) {
  ar(t.size);
  if (static_cast<std::uint64_t>(t.size) > ar.remaining()) {
    throw DecodeError("result record claims " + std::to_string(t.size) + " elements with only " +
                      std::to_string(ar.remaining()) + " bytes left");
  }
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(ByteOutputArchive& ar, const cereal::BinaryData<T>& bd) {
  ar.saveBinary(bd.data, static_cast<std::size_t>(bd.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(ByteInputArchive& ar, cereal::BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}

/// Whether T has a cereal serialisation that the byte archives can use.
template <class T>
inline constexpr bool cereal_serializable = cereal::traits::is_output_serializable<T, ByteOutputArchive>::value &&
                                            cereal::traits::is_input_serializable<T, ByteInputArchive>::value;

template <class T>
inline constexpr bool is_vector_of_trivial = false;
template <class T, class A>
inline constexpr bool is_vector_of_trivial<std::vector<T, A>> = std::is_trivially_copyable_v<T>;

[[noreturn]] void throw_size_mismatch(const char* what, std::size_t expected, std::size_t got);

}  // namespace detail

/// Encodes and decodes results of type T; specialise it to teach mpaio a new result type.
template <class T>
struct Codec;

/// Trivially copyable results travel as their bytes.
template <class T>
  requires std::is_trivially_copyable_v<T>
struct Codec<T> {
  static void encode(const T& value, std::vector<std::byte>& out) { detail::append_bytes(out, &value, sizeof(T)); }
  static T decode(std::span<const std::byte> in) {
    if (in.size() != sizeof(T)) detail::throw_size_mismatch("trivially copyable result", sizeof(T), in.size());
    std::array<std::byte, sizeof(T)> raw;
    std::memcpy(raw.data(), in.data(), sizeof(T));
    return std::bit_cast<T>(raw);
  }
};

/// Strings travel as their characters.
template <>
struct Codec<std::string> {
  static void encode(const std::string& value, std::vector<std::byte>& out) {
    detail::append_bytes(out, value.data(), value.size());
  }
  static std::string decode(std::span<const std::byte> in) {
    return {reinterpret_cast<const char*>(in.data()), in.size()};
  }
};

/// Vectors of trivially copyable elements travel as their elements' bytes.
template <class T, class A>
  requires std::is_trivially_copyable_v<T>
struct Codec<std::vector<T, A>> {
  static void encode(const std::vector<T, A>& value, std::vector<std::byte>& out) {
    detail::append_bytes(out, value.data(), value.size() * sizeof(T));
  }
  static std::vector<T, A> decode(std::span<const std::byte> in) {
    if (in.size() % sizeof(T) != 0) detail::throw_size_mismatch("vector result (multiple of)", sizeof(T), in.size());
    std::vector<T, A> value(in.size() / sizeof(T));
    if (!value.empty()) std::memcpy(value.data(), in.data(), in.size());  // an empty vector's data() may be null
    return value;
  }
};

/// Any other type with a cereal serialize/save/load function.
template <class T>
  requires(!std::is_trivially_copyable_v<T> && !std::is_same_v<T, std::string> && !detail::is_vector_of_trivial<T> &&
           detail::cereal_serializable<T>)
struct Codec<T> {
  static void encode(const T& value, std::vector<std::byte>& out) {
    detail::ByteOutputArchive archive(out);
    archive(value);
  }
  static T decode(std::span<const std::byte> in) {
    static_assert(std::is_default_constructible_v<T>, "a cereal-serialised result type must be default constructible");
    T value{};
    try {
      detail::ByteInputArchive archive(in);
      archive(value);
      if (archive.remaining() != 0) {
        throw DecodeError("result record has " + std::to_string(archive.remaining()) + " bytes left over");
      }
    } catch (const DecodeError&) {
      throw;
    } catch (const std::exception& e) {
      throw DecodeError(std::string("result record could not be decoded: ") + e.what());
    }
    return value;
  }
};

/// Whether results of type T can travel between processes (Codec<T> is defined).
template <class T>
concept Encodable = requires(const T& value, std::vector<std::byte>& out, std::span<const std::byte> in) {
  Codec<T>::encode(value, out);
  { Codec<T>::decode(in) } -> std::same_as<T>;
};

}  // namespace mpaio

CEREAL_REGISTER_ARCHIVE(mpaio::detail::ByteOutputArchive)
CEREAL_REGISTER_ARCHIVE(mpaio::detail::ByteInputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(mpaio::detail::ByteInputArchive, mpaio::detail::ByteOutputArchive)
