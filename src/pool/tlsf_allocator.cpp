#include "pool/tlsf_allocator.hpp"

#include <algorithm>
#include <bit>
#include <iterator>

#include "pool/fault_injection.hpp"

namespace mpaio::detail {

using namespace pool;

void TlsfAllocator::format(TlsfState& state) noexcept {
  state.fl_bitmap = 0;
  std::fill(std::begin(state.sl_bitmap), std::end(state.sl_bitmap), 0u);
  for (auto& row : state.heads) std::fill(std::begin(row), std::end(row), kNone);
  std::fill(std::begin(state.quick_heads), std::end(state.quick_heads), kNone);
  std::fill(std::begin(state.quick_count), std::end(state.quick_count), 0u);
  state.unused_head = kNone;
  state.blocks_hwm = 0;
}

std::uint32_t TlsfAllocator::new_desc() {
  const std::uint32_t d = state_.unused_head;
  if (d != kNone) {
    set(state_.unused_head, blocks_[d].link_next);
    return d;
  }
  if (state_.blocks_hwm >= blocks_.size()) return kNone;
  const std::uint32_t fresh = state_.blocks_hwm;
  set(state_.blocks_hwm, fresh + 1);
  return fresh;
}

void TlsfAllocator::retire_desc(std::uint32_t d) {
  set(blocks_[d].state, std::uint32_t{block_unused});
  set(blocks_[d].generation, blocks_[d].generation + 1);
  set(blocks_[d].link_next, state_.unused_head);
  set(state_.unused_head, d);
}

void TlsfAllocator::insert_free(std::uint32_t b) {
  const auto [fl, sl] = insert_class(blocks_[b].size);
  const std::uint32_t head = state_.heads[fl][sl];
  set(blocks_[b].state, std::uint32_t{block_free});
  set(blocks_[b].link_prev, kNone);
  set(blocks_[b].link_next, head);
  if (head != kNone) set(blocks_[head].link_prev, b);
  set(state_.heads[fl][sl], b);
  if ((state_.sl_bitmap[fl] & (1u << sl)) == 0) set(state_.sl_bitmap[fl], state_.sl_bitmap[fl] | (1u << sl));
  if ((state_.fl_bitmap & (std::uint64_t{1} << fl)) == 0) {
    set(state_.fl_bitmap, state_.fl_bitmap | (std::uint64_t{1} << fl));
  }
}

void TlsfAllocator::remove_free(std::uint32_t b) {
  const auto [fl, sl] = insert_class(blocks_[b].size);
  const std::uint32_t prev = blocks_[b].link_prev;
  const std::uint32_t next = blocks_[b].link_next;
  if (next != kNone) set(blocks_[next].link_prev, prev);
  if (prev != kNone) {
    set(blocks_[prev].link_next, next);
  } else {
    set(state_.heads[fl][sl], next);
    if (next == kNone) {
      set(state_.sl_bitmap[fl], state_.sl_bitmap[fl] & ~(1u << sl));
      if (state_.sl_bitmap[fl] == 0) set(state_.fl_bitmap, state_.fl_bitmap & ~(std::uint64_t{1} << fl));
    }
  }
}

std::uint32_t TlsfAllocator::add_segment(std::uint32_t segment, std::uint64_t size) {
  const std::uint32_t d = new_desc();
  if (d == kNone) return kNone;
  BlockDesc& b = blocks_[d];
  set(b.offset, std::uint64_t{0});
  set(b.size, size);
  set(b.segment, segment);
  set(b.refs, std::uint32_t{0});
  set(b.phys_prev, kNone);
  set(b.phys_next, kNone);
  insert_free(d);
  return d;
}

std::uint32_t TlsfAllocator::take(std::uint64_t size) {
  if (size <= kQuickMax) {
    const unsigned cls = static_cast<unsigned>(size / kAlign) - 1;
    const std::uint32_t b = state_.quick_heads[cls];
    if (b != kNone) {
      set(state_.quick_heads[cls], blocks_[b].link_next);
      set(state_.quick_count[cls], state_.quick_count[cls] - 1);
      set(blocks_[b].state, std::uint32_t{block_used});
      inject_fault(PoolFaultPoint::block_taken);
      return b;
    }
  }
  auto [fl, sl] = search_class(size);
  if (fl >= kFlCount) return kNone;
  std::uint32_t sl_map = state_.sl_bitmap[fl] & (~0u << sl);
  if (sl_map == 0) {
    const std::uint64_t fl_map = fl + 1 < 64 ? state_.fl_bitmap & (~std::uint64_t{0} << (fl + 1)) : 0;
    if (fl_map == 0) return kNone;
    fl = static_cast<unsigned>(std::countr_zero(fl_map));
    sl_map = state_.sl_bitmap[fl];
  }
  sl = static_cast<unsigned>(std::countr_zero(sl_map));
  const std::uint32_t b = state_.heads[fl][sl];
  remove_free(b);
  inject_fault(PoolFaultPoint::block_taken);
  BlockDesc& blk = blocks_[b];
  if (blk.size - size >= kAlign) {
    const std::uint32_t r = new_desc();
    if (r != kNone) {  // no descriptor left: the block is handed out whole
      BlockDesc& rest = blocks_[r];
      set(rest.offset, blk.offset + size);
      set(rest.size, blk.size - size);
      set(rest.segment, blk.segment);
      set(rest.refs, std::uint32_t{0});
      set(rest.phys_prev, b);
      set(rest.phys_next, blk.phys_next);
      if (blk.phys_next != kNone) set(blocks_[blk.phys_next].phys_prev, r);
      set(blk.phys_next, r);
      set(blk.size, size);
      inject_fault(PoolFaultPoint::block_split);
      insert_free(r);
    }
  }
  set(blk.state, std::uint32_t{block_used});
  return b;
}

void TlsfAllocator::give_back(std::uint32_t b) {
  BlockDesc& blk = blocks_[b];
  set(blk.generation, blk.generation + 1);
  if (blk.size <= kQuickMax) {
    const unsigned cls = static_cast<unsigned>(blk.size / kAlign) - 1;
    if (state_.quick_count[cls] < kQuickLimit) {
      set(blk.state, std::uint32_t{block_quick});
      set(blk.link_next, state_.quick_heads[cls]);
      set(state_.quick_heads[cls], b);
      set(state_.quick_count[cls], state_.quick_count[cls] + 1);
      return;
    }
  }
  tlsf_free(b);
}

void TlsfAllocator::absorb(std::uint32_t left, std::uint32_t right) {
  const std::uint32_t after = blocks_[right].phys_next;
  set(blocks_[left].size, blocks_[left].size + blocks_[right].size);
  set(blocks_[left].phys_next, after);
  if (after != kNone) set(blocks_[after].phys_prev, left);
  retire_desc(right);
  inject_fault(PoolFaultPoint::block_merged);
}

void TlsfAllocator::tlsf_free(std::uint32_t b) {
  const std::uint32_t prev = blocks_[b].phys_prev;
  if (prev != kNone && blocks_[prev].state == block_free) {
    remove_free(prev);
    absorb(prev, b);
    b = prev;
  }
  const std::uint32_t next = blocks_[b].phys_next;
  if (next != kNone && blocks_[next].state == block_free) {
    remove_free(next);
    absorb(b, next);
  }
  insert_free(b);
}

bool TlsfAllocator::flush_one() {
  for (unsigned cls = 0; cls < kQuickClasses; ++cls) {
    const std::uint32_t b = state_.quick_heads[cls];
    if (b == kNone) continue;
    set(state_.quick_heads[cls], blocks_[b].link_next);
    set(state_.quick_count[cls], state_.quick_count[cls] - 1);
    tlsf_free(b);
    return true;
  }
  return false;
}

}  // namespace mpaio::detail
