#pragma once
// A ring of variable-size records with one producer and one consumer in two processes: the layout in shared
// memory, the writer, and the reader that validates every record before it hands it out (the producer may
// be a crashed or misbehaving process: a bad record is reported, never followed out of the ring).
//
// A record is an 8-byte header {size, kind} and a body, padded to 8 bytes; `size` counts the header and the
// body, not the padding. A record never wraps: when the space left before the end is too small, the writer fills it with a padding
// record and starts at offset 0. A record is at most half the ring, so it always fits after a wrap.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <string_view>
#include <type_traits>

namespace mpaio::detail {

/// The shared positions (bytes written / consumed, never wrapping); the ring's bytes live elsewhere.
struct RecordRingState {
  alignas(64) std::atomic<std::uint64_t> head{0};  // written by the producer
  alignas(64) std::atomic<std::uint64_t> tail{0};  // written by the consumer
};

/// Every record starts with this.
struct RecordHeader {
  std::uint32_t size;  // header and body, without the padding that follows to the next multiple of 8
  std::uint32_t kind;  // kPadKind, or a kind of the protocol that uses the ring
};
static_assert(sizeof(RecordHeader) == 8);

/// The kind of a padding record (fills the ring up to its end).
inline constexpr std::uint32_t kPadKind = 0xffffffffu;

inline constexpr std::size_t align8(std::size_t n) noexcept { return (n + 7) & ~std::size_t{7}; }

/// The bytes of a fixed-size record header (or any trivially copyable value), to write as a record's part.
template <class T>
std::span<const std::byte> bytes_of(const T& value) noexcept {
  static_assert(std::is_trivially_copyable_v<T>);
  return {reinterpret_cast<const std::byte*>(&value), sizeof value};
}
/// The characters of a text, to write as a record's part.
inline std::span<const std::byte> bytes_of(std::string_view text) noexcept {
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}
/// Copies the fixed-size header at the start of a record's body into `out`; false when the body is shorter.
template <class T>
bool read_header(std::span<const std::byte> body, T& out) noexcept {
  static_assert(std::is_trivially_copyable_v<T>);
  if (body.size() < sizeof out) return false;
  std::memcpy(&out, body.data(), sizeof out);
  return true;
}

/// The producer's end.
class RecordWriter {
 public:
  RecordWriter() = default;
  RecordWriter(RecordRingState& state, std::span<std::byte> ring) noexcept
      : state_(&state), ring_(ring), head_(state.head.load(std::memory_order_relaxed)) {}

  /// The largest body a record may have.
  [[nodiscard]] std::size_t max_body() const noexcept { return ring_.size() / 2 - sizeof(RecordHeader); }
  /// The bytes a record with a body of `body` bytes takes.
  [[nodiscard]] static std::size_t record_size(std::size_t body) noexcept { return align8(sizeof(RecordHeader) + body); }

  /// Whether a record with a body of `body` bytes fits now.
  [[nodiscard]] bool fits(std::size_t body) const noexcept {
    return head_ + padding_for(record_size(body)) + record_size(body) - state_->tail.load(std::memory_order_acquire) <=
           ring_.size();
  }

  /// Writes one record of `kind` whose body is the concatenation of `parts`, and publishes it; false when it
  /// does not fit now (nothing is written). The body must be at most max_body().
  bool try_write(std::uint32_t kind, std::initializer_list<std::span<const std::byte>> parts) noexcept {
    std::size_t body = 0;
    for (auto part : parts) body += part.size();
    if (!fits(body)) return false;
    const std::size_t size = record_size(body);
    if (const std::size_t pad = padding_for(size); pad != 0) {
      const RecordHeader filler{static_cast<std::uint32_t>(pad), kPadKind};
      std::memcpy(ring_.data() + offset(), &filler, sizeof filler);
      head_ += pad;
    }
    std::byte* at = ring_.data() + offset();
    const RecordHeader header{static_cast<std::uint32_t>(sizeof(RecordHeader) + body), kind};
    std::memcpy(at, &header, sizeof header);
    at += sizeof header;
    for (auto part : parts) {
      if (!part.empty()) std::memcpy(at, part.data(), part.size());
      at += part.size();
    }
    head_ += size;
    state_->head.store(head_, std::memory_order_release);
    return true;
  }

 private:
  [[nodiscard]] std::size_t offset() const noexcept { return static_cast<std::size_t>(head_ % ring_.size()); }
  /// The padding needed before a record of `size` bytes so that it does not wrap.
  [[nodiscard]] std::size_t padding_for(std::size_t size) const noexcept {
    const std::size_t left = ring_.size() - offset();
    return left < size ? left : 0;
  }

  RecordRingState* state_ = nullptr;
  std::span<std::byte> ring_;
  std::uint64_t head_ = 0;
};

/// The consumer's end: reads records in order, validating each.
class RecordReader {
 public:
  /// One record: its kind and its body (valid until the record is consumed).
  struct Record {
    std::uint32_t kind = 0;
    std::span<const std::byte> body;
  };
  enum class Status {
    empty,      ///< nothing published
    ready,      ///< a record is in `out`
    malformed,  ///< the next record's header is impossible: the producer is not to be trusted further
  };

  RecordReader() = default;
  RecordReader(RecordRingState& state, std::span<std::byte> ring) noexcept
      : state_(&state), ring_(ring), tail_(state.tail.load(std::memory_order_relaxed)) {}

  /// Looks at the next record (skipping padding); it stays in the ring until consume().
  Status peek(Record& out) noexcept {
    for (;;) {
      const std::uint64_t head = state_->head.load(std::memory_order_acquire);
      if (head == tail_) return Status::empty;
      const std::size_t published = static_cast<std::size_t>(head - tail_);
      const std::size_t offset = static_cast<std::size_t>(tail_ % ring_.size());
      const std::size_t left = ring_.size() - offset;
      if (published > ring_.size() || published < sizeof(RecordHeader) || left < sizeof(RecordHeader)) {
        return Status::malformed;
      }
      RecordHeader header{};
      std::memcpy(&header, ring_.data() + offset, sizeof header);
      // A record, padded, lies within what was published and before the end of the ring; a padding record
      // reaches exactly the end. Anything else was not written by a correct producer (a record half-written
      // when the producer died is not published, so it is never seen).
      const std::size_t padded = align8(header.size);
      const bool sane = header.size >= sizeof(RecordHeader) && padded <= left && padded <= published &&
                        (header.kind != kPadKind || header.size == left);
      if (!sane) return Status::malformed;
      if (header.kind == kPadKind) {
        tail_ += header.size;
        continue;
      }
      out.kind = header.kind;
      out.body = {ring_.data() + offset + sizeof header, header.size - sizeof header};
      size_ = padded;
      return Status::ready;
    }
  }
  /// Consumes the record peek() returned. The producer sees the space once publish() is called.
  void consume() noexcept {
    tail_ += size_;
    size_ = 0;
  }
  /// Hands the consumed space back to the producer.
  void publish() noexcept { state_->tail.store(tail_, std::memory_order_release); }
  /// Whether records are published and not consumed.
  [[nodiscard]] bool pending() const noexcept { return state_->head.load(std::memory_order_acquire) != tail_; }
  /// Whether records are published beyond the one peek() returned.
  [[nodiscard]] bool more_after_peeked() const noexcept {
    return state_->head.load(std::memory_order_acquire) != tail_ + size_;
  }

 private:
  RecordRingState* state_ = nullptr;
  std::span<std::byte> ring_;
  std::uint64_t tail_ = 0;
  std::size_t size_ = 0;
};

}  // namespace mpaio::detail
