#pragma once
// UndoJournal: the undo log of one transaction over a region of shared memory. Before a 4- or 8-byte field
// of the region changes, its offset, size and old value are appended to entries that live in the region
// too, so that a transaction a killed process left half done is rolled back by the next process to take
// the lock (undo), and a finished one is forgotten (commit). The journal knows nothing of locks or
// processes: its user holds the lock that makes the region's changes a transaction.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace mpaio::detail {

/// One undo entry: where (byte offset in the region, shifted left 4) | size, and the old value.
struct JournalEntry {
  std::uint64_t where;
  std::uint64_t old;
};

class UndoJournal {
 public:
  /// A journal over `region`, whose entries and length (both inside shared memory, usually inside the
  /// region) are `entries` and `length`. Nothing is written.
  UndoJournal(std::span<std::byte> region, std::uint32_t& length, std::span<JournalEntry> entries) noexcept
      : base_(region.data()), region_size_(region.size()), length_(&length), entries_(entries.data()),
        capacity_(static_cast<std::uint32_t>(entries.size())) {}

  /// Journals `field` (4 or 8 bytes inside the region), then stores `value` in it (a relaxed atomic store:
  /// some fields are read unlocked, as hints). A transaction larger than the journal, or a field outside
  /// the region, is a bug: the process aborts before the field changes, and what was journaled can still be
  /// undone.
  template <class T>
  void set(T& field, T value) noexcept {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8);
    const std::uint32_t n = *length_;
    const auto at = reinterpret_cast<std::uintptr_t>(&field);
    const auto base = reinterpret_cast<std::uintptr_t>(base_);
    if (n >= capacity_ || at < base || region_size_ < sizeof(T) || at - base > region_size_ - sizeof(T)) {
      misuse(n >= capacity_);
    }
    const std::uint64_t where = at - base;
    std::uint64_t old = 0;
    std::memcpy(&old, &field, sizeof(T));
    entries_[n] = JournalEntry{(where << 4) | sizeof(T), old};
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the entry before the length, the length before the field
    *length_ = n + 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    __atomic_store_n(&field, value, __ATOMIC_RELAXED);
  }

  /// Ends the transaction: its changes stay.
  void commit() noexcept;
  /// Restores every journaled field, the last change first, and empties the journal. Safe to run again if
  /// interrupted (each entry is dropped once restored).
  void undo() noexcept;

  /// Entries of the open transaction.
  [[nodiscard]] std::uint32_t size() const noexcept { return *length_; }
  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }

 private:
  [[noreturn]] static void misuse(bool full) noexcept;

  std::byte* base_;
  std::size_t region_size_;
  std::uint32_t* length_;
  JournalEntry* entries_;
  std::uint32_t capacity_;
};

}  // namespace mpaio::detail
