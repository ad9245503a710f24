#pragma once
// A ring of fixed-size records with one producer and one consumer in two processes: the layout in shared
// memory, and both ends. Positions only grow (64 bits never wrap); a record's place is its position modulo
// the capacity. Each end keeps its own position and publishes it; it only reads the other's.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>

namespace mpaio::detail {

/// The shared part: both positions and the records. Zero-filled memory is an empty ring.
template <class Record, std::size_t Capacity>
struct TaskRingState {
  static_assert(std::is_trivially_copyable_v<Record>, "records are copied through shared memory");
  static_assert(Capacity > 0 && (Capacity & (Capacity - 1)) == 0, "a power of two");
  alignas(64) std::atomic<std::uint64_t> head{0};  // written by the producer: records published
  alignas(64) std::atomic<std::uint64_t> tail{0};  // written by the consumer: records taken
  alignas(64) Record records[Capacity];
};

/// The producer's end.
template <class Record, std::size_t Capacity>
class TaskRingWriter {
 public:
  using State = TaskRingState<Record, Capacity>;
  TaskRingWriter() = default;
  explicit TaskRingWriter(State& state) noexcept : state_(&state), head_(state.head.load(std::memory_order_relaxed)) {}

  /// Records the consumer has not taken yet.
  [[nodiscard]] std::size_t queued() const noexcept {
    return static_cast<std::size_t>(head_ - state_->tail.load(std::memory_order_acquire));
  }
  /// Room for this many more records.
  [[nodiscard]] std::size_t room() const noexcept { return Capacity - queued(); }
  /// Appends `record` and publishes it; false (nothing written) when the ring is full.
  bool try_push(const Record& record) noexcept {
    if (room() == 0) return false;
    state_->records[head_ % Capacity] = record;
    state_->head.store(++head_, std::memory_order_release);
    return true;
  }
  /// Records published so far.
  [[nodiscard]] std::uint64_t position() const noexcept { return head_; }

 private:
  State* state_ = nullptr;
  std::uint64_t head_ = 0;
};

/// The consumer's end.
template <class Record, std::size_t Capacity>
class TaskRingReader {
 public:
  using State = TaskRingState<Record, Capacity>;
  TaskRingReader() = default;
  explicit TaskRingReader(State& state) noexcept : state_(&state), tail_(state.tail.load(std::memory_order_relaxed)) {}

  /// Records published and not taken yet.
  [[nodiscard]] std::size_t available() const noexcept {
    return static_cast<std::size_t>(state_->head.load(std::memory_order_acquire) - tail_);
  }
  [[nodiscard]] bool empty() const noexcept { return available() == 0; }
  /// Takes the oldest record, or nothing when the ring is empty. The producer may reuse its place at once.
  std::optional<Record> try_pop() noexcept {
    if (empty()) return std::nullopt;
    const Record record = state_->records[tail_ % Capacity];
    state_->tail.store(++tail_, std::memory_order_release);
    return record;
  }

 private:
  State* state_ = nullptr;
  std::uint64_t tail_ = 0;
};

}  // namespace mpaio::detail
