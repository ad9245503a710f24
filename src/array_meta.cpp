#include "mpaio/array_meta.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include "mpaio/error.hpp"

namespace mpaio {

namespace {
std::size_t checked_mul(std::size_t a, std::size_t b, const ArrayMeta& meta) {
  std::size_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) {
    throw InvalidArgument(fmt::format("array {} shape [{}] of {}: size overflows", meta.shm_name,
                                      fmt::join(meta.shape, ", "), meta.dtype.typestr()));
  }
  return out;
}

/// alignof of the C++ element type a DType stands for (complex: that of its parts; strings: of a character).
std::size_t alignment_of(const DType& dtype) {
  switch (dtype.kind) {
    case DTypeKind::bytes: return 1;
    case DTypeKind::unicode: return 4;
    case DTypeKind::complex: return dtype.itemsize / 2;
    default: return dtype.itemsize;
  }
}
}  // namespace

std::size_t ArrayMeta::size() const {
  std::size_t n = 1;
  for (std::size_t extent : shape) n = checked_mul(n, extent, *this);
  return n;
}

std::size_t ArrayMeta::nbytes() const { return checked_mul(size(), dtype.itemsize, *this); }

std::size_t ArrayMeta::row_size() const {
  std::size_t n = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) n = checked_mul(n, shape[i], *this);
  return n;
}

void ArrayMeta::check_fits(std::size_t segment_size) const {
  const std::size_t bytes = nbytes();
  std::size_t end = 0;
  if (__builtin_add_overflow(offset, bytes, &end) || end > segment_size) {
    throw InvalidArgument(fmt::format(
        "array {} {} shape [{}] at offset {} needs {} bytes, beyond the segment's {} bytes", shm_name,
        dtype.typestr(), fmt::join(shape, ", "), offset, bytes, segment_size));
  }
  if (const std::size_t align = alignment_of(dtype); align > 1 && offset % align != 0) {
    throw InvalidArgument(fmt::format("array {} {}: offset {} is not a multiple of the element alignment {}",
                                      shm_name, dtype.typestr(), offset, align));
  }
}

void ArrayMeta::check_dtype(const DType& expected) const {
  if (dtype != expected) {
    throw InvalidArgument(fmt::format("array {} holds {} elements, but {} was expected", shm_name, dtype.typestr(),
                                      expected.typestr()));
  }
}

std::string ArrayMeta::to_json() const {
  nlohmann::json j;
  j["shm_name"] = shm_name;
  j["typestr"] = dtype.typestr();
  j["shape"] = shape;
  j["offset"] = offset;
  return j.dump();
}

ArrayMeta ArrayMeta::from_json(std::string_view json) {
  const auto j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw DecodeError("ArrayMeta JSON: not valid JSON");
  if (!j.is_object()) throw DecodeError("ArrayMeta JSON: expected an object");
  auto field = [&](const char* key) -> const nlohmann::json& {
    auto it = j.find(key);
    if (it == j.end()) throw DecodeError(fmt::format("ArrayMeta JSON: missing key \"{}\"", key));
    return *it;
  };
  ArrayMeta meta;
  const auto& name = field("shm_name");
  if (!name.is_string()) throw DecodeError("ArrayMeta JSON: \"shm_name\" must be a string");
  meta.shm_name = name.get<std::string>();
  const auto& typestr = field("typestr");
  if (!typestr.is_string()) throw DecodeError("ArrayMeta JSON: \"typestr\" must be a string");
  try {
    meta.dtype = DType::parse(typestr.get<std::string>());
  } catch (const InvalidArgument& e) {
    throw DecodeError(fmt::format("ArrayMeta JSON: {}", e.what()));
  }
  const auto& shape = field("shape");
  if (!shape.is_array()) throw DecodeError("ArrayMeta JSON: \"shape\" must be an array of non-negative integers");
  for (const auto& extent : shape) {
    if (!extent.is_number_unsigned()) {
      throw DecodeError("ArrayMeta JSON: \"shape\" must be an array of non-negative integers");
    }
    meta.shape.push_back(extent.get<std::size_t>());
  }
  if (auto it = j.find("offset"); it != j.end()) {
    if (!it->is_number_unsigned()) throw DecodeError("ArrayMeta JSON: \"offset\" must be a non-negative integer");
    meta.offset = it->get<std::size_t>();
  }
  try {
    (void)meta.nbytes();
    (void)meta.row_size();  // with a zero extent first, nbytes() is 0 whatever the others multiply to
  } catch (const InvalidArgument& e) {
    throw DecodeError(fmt::format("ArrayMeta JSON: {}", e.what()));
  }
  return meta;
}

}  // namespace mpaio
