#include "pool/undo_journal.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace mpaio::detail {

void UndoJournal::commit() noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  *length_ = 0;
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

void UndoJournal::undo() noexcept {
  for (std::uint32_t i = std::min(*length_, capacity_); i-- > 0;) {
    const JournalEntry e = entries_[i];
    const std::uint64_t where = e.where >> 4;
    const std::uint64_t size = e.where & 0xf;
    if ((size == 4 || size == 8) && where <= region_size_ - size) std::memcpy(base_ + where, &e.old, size);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    *length_ = i;
  }
  *length_ = 0;
}

void UndoJournal::misuse(bool full) noexcept {
  static constexpr char kFull[] = "mpaio: a SharedMemoryPool transaction outgrew its undo journal\n";
  static constexpr char kOutside[] = "mpaio: a SharedMemoryPool journal entry lies outside its region\n";
  const char* text = full ? kFull : kOutside;
  const std::size_t size = full ? sizeof kFull - 1 : sizeof kOutside - 1;
  (void)!::write(STDERR_FILENO, text, size);
  std::abort();
}

}  // namespace mpaio::detail
